#!/usr/bin/python3
"""The seed's search loop (part 4 of the series), without the model: for each shard, np.load ids
and features, Euclidean distance of every row to the query, argsort, keep the 10 nearest; merge,
sort, print "ID DISTANCE". Usage: seed_search.py SHARD_DIR QUERY.npy"""
import os
import sys

import numpy as np


def search(shard_dir, q, k=10):
    """The k nearest (id, distance) pairs, as part (4) of the series computes them."""
    candidates = []
    i = 0
    while os.path.exists(os.path.join(shard_dir, f"{i:04d}.features.npy")):
        ids = np.load(os.path.join(shard_dir, f"{i:04d}.object_ids.npy"))
        features = np.load(os.path.join(shard_dir, f"{i:04d}.features.npy"))
        distances = np.linalg.norm(features - q, axis=1)
        for j in np.argsort(distances)[:k]:
            candidates.append((ids[j], distances[j]))
        i += 1
    candidates.sort(key=lambda c: c[1])
    return candidates[:k]


if __name__ == "__main__":
    for id_, d in search(sys.argv[1], np.load(sys.argv[2]).reshape(-1)):
        print(id_, float(d))
