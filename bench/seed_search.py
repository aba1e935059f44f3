#!/usr/bin/python3
"""The seed's search loop (part 4 of the series), without the model: for each shard, np.load ids
and features, Euclidean distance of every row to the query, argsort, keep the 10 nearest; merge,
sort, print "ID DISTANCE". Usage: seed_search.py SHARD_DIR QUERY.npy"""
import os
import sys

import numpy as np


def main(shard_dir, query_path, k=10):
    q = np.load(query_path).reshape(-1)
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
    for id_, d in candidates[:k]:
        print(id_, float(d))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
