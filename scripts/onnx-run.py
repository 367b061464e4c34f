#!/usr/bin/env python3
"""Checks an ONNX file with the onnx checker and runs it in onnxruntime on IDX images, printing
one line per image: the class and the scores. Used by the tests of `bql export onnx`.

usage: onnx-run.py MODEL.onnx IMAGES-idx3-ubyte[.gz] [LIMIT]
"""
import sys

import numpy as np
from bql_idx import read_idx
import onnx
import onnxruntime


def main():
    onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)
    session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    pixels = read_idx(sys.argv[2]).astype(np.float32)
    if len(sys.argv) > 3:
        pixels = pixels[: int(sys.argv[3])]
    scores, classes = session.run(["scores", "class"], {"pixels": pixels})
    for c, s in zip(classes, scores):
        print(int(c), " ".join(str(int(v)) if v == int(v) else str(v) for v in s))


if __name__ == "__main__":
    main()
