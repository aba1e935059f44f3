#!/usr/bin/python3
"""All pairs within a distance, as one would write it with numpy: load every shard into one
matrix, then for each pair of row blocks (upper triangle) the squared distances from the
matrix product, |x|^2 + |y|^2 - 2 x.y, keeping the pairs within D. No dense n x n matrix: one
block pair at a time. Prints "PAIRS ROWS" to stdout, then each pair as "ID_A<TAB>ID_B".
Usage: dupes_numpy.py SHARD_DIR MAX_DISTANCE [BLOCK_ROWS]"""
import os
import sys

import numpy as np


def load(shard_dir):
    ids, parts = [], []
    i = 0
    while os.path.exists(os.path.join(shard_dir, f"{i:04d}.features.npy")):
        ids.extend(np.load(os.path.join(shard_dir, f"{i:04d}.object_ids.npy")).tolist())
        parts.append(np.load(os.path.join(shard_dir, f"{i:04d}.features.npy")))
        i += 1
    return ids, np.concatenate(parts).astype(np.float32, copy=False)


def pairs_within(x, d, block):
    norms = np.einsum("ij,ij->i", x, x)
    n = len(x)
    found = []
    for i in range(0, n, block):
        xi, ni = x[i:i + block], norms[i:i + block]
        for j in range(i, n, block):
            d2 = ni[:, None] + norms[None, j:j + block] - 2 * (xi @ x[j:j + block].T)
            a, b = np.nonzero(d2 <= d * d)
            keep = (a + i) < (b + j)  # the upper triangle, each pair once
            found.extend(zip((a + i)[keep].tolist(), (b + j)[keep].tolist()))
    return found


if __name__ == "__main__":
    ids, x = load(sys.argv[1])
    block = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    pairs = pairs_within(x, float(sys.argv[2]), block)
    print(len(pairs), len(x))
    for a, b in pairs:
        print(f"{ids[a]}\t{ids[b]}")
