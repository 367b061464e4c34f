#!/usr/bin/env python3
"""Runs a QONNX file with qonnx's own executor (its numpy implementations of BipolarQuant and
Quant, onnxruntime for the standard nodes) on IDX images, printing one line per image: the class
and the scores. Used by the tests of `bql export onnx --flavour qonnx`.

usage: qonnx-run.py MODEL.onnx IMAGES-idx[.gz] [LIMIT]
"""
import sys

import numpy as np
from bql_idx import read_idx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core import onnx_exec
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes


# qonnx runs standard nodes one at a time in onnxruntime, in models that onnx 1.23 stamps with
# IR version 14; onnxruntime 1.30 reads up to 13. The nodes are opset 13, so IR 10 is enough.
_make_model = onnx_exec.qonnx_make_model
onnx_exec.qonnx_make_model = lambda graph, **kw: _make_model(graph, ir_version=10, **kw)


def main():
    pixels = read_idx(sys.argv[2]).astype(np.float32)
    if len(sys.argv) > 3:
        pixels = pixels[: int(sys.argv[3])]
    model = ModelWrapper(sys.argv[1])
    # qonnx executes fixed shapes: the batch is this many images.
    model.set_tensor_shape("pixels", list(pixels.shape))
    model = model.transform(InferShapes())
    out = execute_onnx(model, {"pixels": pixels})
    for c, s in zip(out["class"], out["scores"]):
        print(int(c), " ".join(str(int(v)) if v == int(v) else str(v) for v in s))


if __name__ == "__main__":
    main()
