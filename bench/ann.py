#!/usr/bin/python3
"""Approximate and flat indexes beside simsearch in the benchmark: hnswlib and FAISS's flat index.

    /usr/bin/python3 bench/ann.py SHARD_DIR QUERIES.npy

Loads the seed-layout shards (NNNN.features.npy), builds an hnswlib HNSW index (M=16,
ef_construction=200, 2 threads) and a FAISS IndexFlatL2, answers every query one at a time
(top-10) with each, and prints one JSON object: build seconds, median per-query milliseconds,
and recall@10 against the exact answer (numpy, float64). Debian's python3-hnswlib and
python3-faiss (scripts/setup.sh --for-tests).
"""
import glob
import json
import os
import sys
import time

import numpy as np


def main():
    shards, queries = sys.argv[1], sys.argv[2]
    feats = [np.load(p) for p in sorted(glob.glob(os.path.join(shards, "*.features.npy")))]
    x = np.ascontiguousarray(np.concatenate(feats).astype(np.float32))
    q = np.load(queries).astype(np.float32).reshape(-1, x.shape[1])
    k = 10
    exact = []
    x64 = x.astype(np.float64)
    sq = (x64 ** 2).sum(axis=1)
    for v in q.astype(np.float64):
        d = sq - 2 * (x64 @ v) + (v ** 2).sum()
        exact.append(set(np.argsort(d, kind="stable")[:k].tolist()))
    del x64
    out = {"rows": int(x.shape[0]), "dim": int(x.shape[1]), "queries": int(q.shape[0])}

    def timed(search):
        times, found = [], []
        for v in q:
            t = time.perf_counter()
            ids = search(v)
            times.append((time.perf_counter() - t) * 1e3)
            found.append(set(int(i) for i in ids))
        recall = sum(len(f & e) for f, e in zip(found, exact)) / (k * len(q))
        return float(np.median(times)), recall

    import hnswlib

    t = time.perf_counter()
    h = hnswlib.Index(space="l2", dim=x.shape[1])
    h.init_index(max_elements=x.shape[0], ef_construction=200, M=16)
    h.set_num_threads(2)
    h.add_items(x, np.arange(x.shape[0]))
    h.set_ef(64)
    build = time.perf_counter() - t
    h.set_num_threads(1)
    ms, recall = timed(lambda v: h.knn_query(v, k=k)[0][0])
    out["hnswlib"] = {"build_s": build, "query_ms": ms, "recall10": recall}

    import faiss

    t = time.perf_counter()
    f = faiss.IndexFlatL2(x.shape[1])
    f.add(x)
    build = time.perf_counter() - t
    ms, recall = timed(lambda v: f.search(v.reshape(1, -1), k)[1][0])
    out["faiss_flat"] = {"build_s": build, "query_ms": ms, "recall10": recall}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
