"""IDX image files (MNIST's format, optionally gzipped) as numpy arrays, one row per image; shared
by the scripts that run exported graphs."""
import gzip
import struct

import numpy as np


def read_idx(path):
    data = (gzip.open if path.endswith(".gz") else open)(path, "rb").read()
    count = struct.unpack(">I", data[4:8])[0]
    dims = data[3]
    return np.frombuffer(data[4 + 4 * dims :], np.uint8).reshape(count, -1)
