#!/usr/bin/env python3
"""Executes a FINN-ONNX binarized MLP with numpy in float32, node by node, independently of bql,
and prints one predicted class per image. FINN's custom MultiThreshold is computed as FINN defines
it (out_scale * count(x >= threshold) + out_bias); BatchNormalization follows the ONNX spec
((x - mean) / sqrt(var + eps) * scale + B); TopK takes the largest value, the lower index first
on ties (ONNX's rule). Used by the tests to check `bql import onnx` image by image.

usage: onnx-numpy.py MODEL.onnx IMAGES-idx3-ubyte[.gz] [LIMIT]
"""
import gzip
import struct
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def read_idx(path):
    data = (gzip.open if path.endswith(".gz") else open)(path, "rb").read()
    count, rows, cols = struct.unpack(">III", data[4:16])
    return np.frombuffer(data[16:], np.uint8).reshape(count, 1, rows, cols)


def multithreshold(x, thresholds, scale, bias):
    channels = thresholds.shape[0]
    t = thresholds.reshape((1, channels) + (1,) * (x.ndim - 2) + (-1,))
    count = (x[..., None] >= t).sum(-1)
    return (scale * count + bias).astype(np.float32)


def batchnorm(x, scale, b, mean, var, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    r = lambda v: v.reshape(shape)
    return ((x - r(mean)) / np.sqrt(r(var) + np.float32(eps)) * r(scale) + r(b)).astype(np.float32)


def run(model, x):
    graph = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    values[graph.input[0].name] = x
    for node in graph.node:
        a = [values[i] for i in node.input]
        attrs = {at.name: onnx.helper.get_attribute_value(at) for at in node.attribute}
        op = node.op_type
        if op in ("Add", "Sub", "Mul", "Div"):
            f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
            out = [f(a[0], a[1]).astype(np.float32)]
        elif op == "Reshape":
            out = [a[0].reshape(len(a[0]), -1)]
        elif op == "MatMul":
            out = [np.matmul(a[0], a[1]).astype(np.float32)]
        elif op == "Unsqueeze":
            out = [np.expand_dims(a[0], tuple(attrs["axes"]))]
        elif op == "Squeeze":
            out = [np.squeeze(a[0], tuple(attrs["axes"]))]
        elif op == "BatchNormalization":
            out = [batchnorm(*a, attrs.get("epsilon", 1e-5))]
        elif op == "MultiThreshold":
            out = [multithreshold(a[0], a[1], attrs["out_scale"], attrs["out_bias"])]
        elif op == "TopK":
            index = np.argsort(-a[0], axis=-1, kind="stable")[:, :1]
            out = [np.take_along_axis(a[0], index, -1), index]
        else:
            sys.exit(f"onnx-numpy: node {node.name} ({op}) is not handled")
        values.update(zip(node.output, out))
    return values[graph.output[0].name].reshape(-1)


def main():
    model = onnx.load(sys.argv[1])
    images = read_idx(sys.argv[2]).astype(np.float32)
    if len(sys.argv) > 3:
        images = images[: int(sys.argv[3])]
    for c in run(model, images):
        print(int(c))


if __name__ == "__main__":
    main()
