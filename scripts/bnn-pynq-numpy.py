#!/usr/bin/env python3
"""An independent NumPy execution of a BNN-PYNQ W1A1 network, straight from its parameter folder
and config.h, written from finn-hlslib's semantics (not from bql's code), to check bql's
importer bit for bit.

    bnn-pynq-numpy.py PARAMS CONFIG_H IMAGES.bin COUNT [STRIDE]

runs images 0, STRIDE, 2 STRIDE, ... (COUNT of them; STRIDE 1 by default).

IMAGES.bin (or .bin.gz) holds CIFAR-10 binary records (label, 1,024 red, 1,024 green, 1,024 blue
bytes) for a convolutional network, or an MNIST idx image file (.gz too) for a fully connected
one. Prints one
JSON object per image: the last layer's accumulators as the hardware holds them ("acc") and the
class the BNN-PYNQ host reports ("class").

Semantics (finn-hlslib 8b7f5f5, BNN-PYNQ foldedmv-offload.h):
- weights: word nf*SF+sf of <l>-<pe>-weights.bin is row nf*PE+pe, bit b column sf*SIMD+b; 1 = +1;
- binary layers: acc = agreements over MW columns (inputs padded with 0 bits = -1); out = t < acc
  with t the low 16 bits of the i64 threshold (ap_int<16>);
- CNV's first layer: the host's x = -1 + 2p/255 rounded to ap_fixed<8,1,AP_RND,AP_SAT>; acc =
  sum of +-x in ap_fixed<24,16>; the threshold word is an ap_fixed<64,56> (value / 256) wrapped
  to ap_fixed<24,16>; out = t < acc;
- convolutions: 3x3, stride 1, no padding, window columns in (ky, kx, c) order; 2x2 max-pool
  (OR) where the next layer's input is half the previous output;
- the last layer: accumulators passed through when it has no threshold files (CNV; the host
  answers the first score larger than all before it and than 0), else class bits t < acc and
  the highest set bit (LFC).
"""
import gzip
import json
import os
import re
import sys

import numpy as np


def defines(path):
    out = {}
    for line in open(path):
        m = re.match(r"\s*#define\s+L(\d+)_(\w+)\s+(\d+)", line)
        if m:
            out.setdefault(int(m.group(1)), {})[m.group(2)] = int(m.group(3))
    return [out[l] for l in sorted(out)]


def weight_matrix(params, l, cfg, mw, mh):
    simd, pe_count = cfg["SIMD"], cfg["PE"]
    sf, nf = mw // simd, mh // pe_count
    w = np.zeros((mh, mw), dtype=np.float32)
    for pe in range(pe_count):
        words = np.fromfile(os.path.join(params, f"{l}-{pe}-weights.bin"), dtype="<u8")
        words = words.reshape(nf, sf)
        bits = (words[:, :, None] >> np.arange(simd, dtype=np.uint64)) & np.uint64(1)
        w[pe::pe_count] = bits.reshape(nf, sf * simd).astype(np.float32) * 2 - 1
    return w


def thresholds(params, l, cfg, mh):
    t = np.zeros(mh, dtype=np.int64)
    for pe in range(cfg["PE"]):
        v = np.fromfile(os.path.join(params, f"{l}-{pe}-thres.bin"), dtype="<i8")
        t[pe :: cfg["PE"]] = v
    return t


def wrap(v, bits):
    """Two's-complement wrap of integers to `bits` bits."""
    m = np.int64(1) << np.int64(bits)
    return ((v + (m >> 1)) % m) - (m >> 1)


def windows(x, k):
    """(H, W, C) -> (OD*OD, k*k*C) in (ky, kx, c) column order."""
    h, _, c = x.shape
    od = h - k + 1
    cols = [x[ky : ky + od, kx : kx + od, :] for ky in range(k) for kx in range(k)]
    return np.stack(cols, axis=2).reshape(od * od, k * k * c), od


def host_fixed_input(pixels):
    """The host's ap_fixed<8,1,AP_RND,AP_SAT> of -1 + 2p/255 (tiny_cnn float), as q / 128."""
    x = np.float32(-1.0) + np.float32(2.0) * pixels.astype(np.float32) / np.float32(255.0)
    q = np.clip(np.floor(x * np.float32(128.0) + np.float32(0.5)), -128, 127)
    return q.astype(np.float64) / 128.0


def run(params, layers, image):
    x = image  # (H, W, C) for a CNN, flat for an MLP
    last = len(layers) - 1
    for l, cfg in enumerate(layers):
        conv = "K" in cfg
        if conv:
            mw, mh = cfg["K"] * cfg["K"] * cfg["IFM_CH"], cfg["OFM_CH"]
            if x.ndim == 3 and x.shape[0] == 2 * cfg["IFM_DIM"]:
                h, _, c = x.shape
                x = x.reshape(h // 2, 2, h // 2, 2, c).max(axis=(1, 3))
            cols, od = windows(x, cfg["K"])
        else:
            mw, mh = cfg["MW"], cfg["MH"]
            flat = x.reshape(-1)
            cols = np.full((1, mw), -1.0)
            cols[0, : flat.size] = flat
        w = weight_matrix(params, l, cfg, mw, mh)
        dot = cols @ w.T.astype(np.float64)
        if l == 0 and conv:
            acc = dot  # the sum of +-q/128, exact in float64
            t = wrap(thresholds(params, l, cfg, mh), 24).astype(np.float64) / 256.0
        else:
            acc = (dot + mw) / 2  # agreements
            if l == last and not os.path.exists(os.path.join(params, f"{l}-0-thres.bin")):
                return acc[0]
            t = wrap(thresholds(params, l, cfg, mh), 16).astype(np.float64)
        fired = np.where(t[None, :] < acc, 1.0, -1.0)
        if l == last:
            return acc[0], fired[0]
        x = fired.reshape(od, od, mh) if conv else fired[0]
    raise SystemExit("no last layer")


def main():
    params, config, images, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    stride = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    layers = defines(config)
    opener = gzip.open if images.endswith(".gz") else open
    with opener(images, "rb") as f:
        data = np.frombuffer(f.read(), dtype=np.uint8)
    cnn = "K" in layers[0]
    if not cnn:
        data = data[16:]  # the idx header: magic, count, rows, columns
    for i in range(0, count * stride, stride):
        if cnn:
            rec = data[i * 3073 : (i + 1) * 3073]
            planes = rec[1:].reshape(3, 32, 32)
            image = host_fixed_input(planes.transpose(1, 2, 0))
        else:
            image = np.where(data[i * 784 : (i + 1) * 784] >= 128, 1.0, -1.0)
        out = run(params, layers, image)
        if isinstance(out, tuple):
            acc, fired = out
            bits = [c for c in range(10) if fired[c] > 0]
            cls = 0 if not bits else int(np.log2(sum(1 << c for c in bits)))
        else:
            acc = out
            cls, best = 0, 0.0
            for c in range(10):
                if acc[c] > best:
                    cls, best = c, acc[c]
        print(json.dumps({"acc": [int(a) for a in acc[:10]], "class": cls}))


if __name__ == "__main__":
    main()
