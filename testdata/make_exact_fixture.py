#!/usr/bin/python3
"""Writes testdata/exact/: seed-layout shards, query vectors, and what the seed's search prints.

The search is part (4)'s algorithm as the series wrote it (bench/seed_search.py): for each shard,
np.load ids and features, Euclidean distance of every row to the query, argsort, keep the 10
nearest; merge the shards' candidates, sort, print "ID DISTANCE". Run with Debian's python3-numpy:
    /usr/bin/python3 testdata/make_exact_fixture.py
The output is committed; the Go tests compare simsearch with expected.txt.
"""
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from seed_search import search as seed_search  # noqa: E402  (the benchmark's copy of the seed)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exact")
DIM, K = 1280, 10
ROWS = [100, 100, 57]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    rng = np.random.default_rng(20261124)
    # Non-negative, like pooled CNN features, with a few near-duplicate rows.
    all_rows = []
    n = 0
    for s, rows in enumerate(ROWS):
        feats = np.maximum(rng.standard_normal((rows, DIM)), 0).astype("<f4")
        if s == 1:
            feats[7] = all_rows[0][3] + rng.normal(0, 0.01, DIM).astype("<f4")
        ids = np.array([f"{rng.bytes(20).hex()}.jpg" for _ in range(rows)])
        np.save(os.path.join(OUT, f"{s:04d}.object_ids.npy"), ids)
        np.save(os.path.join(OUT, f"{s:04d}.features.npy"), feats)
        all_rows.append(feats)
        n += rows
    flat = np.concatenate(all_rows)
    queries = np.stack([
        flat[3],                                    # in the collection: distance 0.0
        flat[150] * 1.05,                           # a scaled copy of a row
        np.maximum(rng.standard_normal(DIM), 0),    # unrelated
        flat[250] + rng.normal(0, 0.05, DIM),       # a noisy copy
    ]).astype("<f4")
    np.save(os.path.join(OUT, "queries.npy"), queries)
    with open(os.path.join(OUT, "expected.txt"), "w") as f:
        for qi, q in enumerate(queries):
            f.write(f"# queries.npy[{qi}]\n")
            for id_, d in seed_search(OUT, q, K):
                f.write(f"{id_} {float(d)!r}\n")


if __name__ == "__main__":
    main()
