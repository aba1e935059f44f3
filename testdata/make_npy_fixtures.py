#!/usr/bin/python3
"""Writes the small npy fixtures under testdata/npy/ with real numpy.

Run with Debian's python3-numpy: /usr/bin/python3 testdata/make_npy_fixtures.py
The output is committed; tests only read it. Deterministic (fixed seeds).
"""
import os
import shutil

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "npy")
DIM = 8


def ids(start, n):
    return np.array([f"{i:040x}.jpg" for i in range(start, start + n)])


def feats(seed, n, dim=DIM):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype("<f4")


def shard_dir(name, pairs):
    """pairs: list of (ids array or None, features array or None) for 0000, 0001, ..."""
    d = os.path.join(ROOT, name)
    os.makedirs(d)
    for i, (a, f) in enumerate(pairs):
        if a is not None:
            np.save(os.path.join(d, f"{i:04d}.object_ids.npy"), a)
        if f is not None:
            np.save(os.path.join(d, f"{i:04d}.features.npy"), f)
    return d


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(ROOT)
    base = [(ids(0, 3), feats(1, 3)), (ids(3, 2), feats(2, 2))]
    # Accepted: every dtype/order a numpy user may have. All hold the same values (up to the
    # precision of the dtype), so tests compare them with ok_f4.
    shard_dir("ok_f4", base)
    shard_dir("ok_f8", [(a, f.astype("<f8")) for a, f in base])
    shard_dir("ok_f2", [(a, f.astype("<f2")) for a, f in base])
    shard_dir("ok_fortran", [(a, np.asfortranarray(f)) for a, f in base])
    shard_dir("ok_f4_bigendian", [(a, f.astype(">f4")) for a, f in base])
    shard_dir("ok_ids_bytes", [(a.astype("S"), f) for a, f in base])
    shard_dir("ok_ids_int64", [(np.arange(len(a), dtype="<i8") + 10 * i, f) for i, (a, f) in enumerate(base)])
    shard_dir("ok_ids_unicode", [(np.array(["café.jpg", "日本.png", "x.gif"]), base[0][1])])

    # Refused.
    nan = feats(3, 3)
    nan[2, 5] = np.nan
    shard_dir("bad_nan", [base[0], (ids(3, 3), nan)])
    inf = feats(3, 3)
    inf[1, 0] = np.inf
    shard_dir("bad_inf", [(ids(0, 3), inf)])
    shard_dir("bad_count", [(ids(0, 4), feats(1, 3))])
    shard_dir("bad_dim", [base[0], (ids(3, 2), feats(2, 2, dim=DIM + 1))])
    shard_dir("bad_rank1", [(ids(0, 3), feats(1, 3).ravel())])
    shard_dir("bad_rank3", [(ids(0, 3), feats(1, 3).reshape(3, 2, 4))])
    shard_dir("bad_int_features", [(ids(0, 3), np.ones((3, DIM), dtype="<i4"))])
    d = shard_dir("bad_truncated", [base[0]])
    p = os.path.join(d, "0000.features.npy")
    with open(p, "rb+") as fh:
        fh.truncate(os.path.getsize(p) - 7)
    d = shard_dir("bad_garbage", [(base[0][0], None)])
    with open(os.path.join(d, "0000.features.npy"), "w") as fh:
        fh.write("this is not an npy file\n")
    d = shard_dir("bad_pickle", [(None, base[0][1])])
    np.save(os.path.join(d, "0000.object_ids.npy"), np.array(["a", None, 3], dtype=object), allow_pickle=True)
    shard_dir("bad_missing_half", [base[0], (ids(3, 2), None)])
    d = shard_dir("bad_gap", [base[0]])
    np.save(os.path.join(d, "0002.object_ids.npy"), ids(3, 2))
    np.save(os.path.join(d, "0002.features.npy"), feats(2, 2))
    # A single query vector (1-D): row 0 of ok_f4's shard 0001, whose id is ...0003.jpg.
    np.save(os.path.join(ROOT, "query_1d.npy"), base[1][1][0])
    # Half floats as numpy writes them: subnormals (6e-5, the smallest 2**-24), signed zeros, the
    # largest finite; numpy's own widening to float32 is the expected answer.
    f2 = np.array([[6e-5, 2.0**-24, -6e-5, 0.0, -0.0, 65504.0, 1.0, -0.333]], dtype="<f2")
    shard_dir("ok_f2_special", [(ids(0, 1), f2)])
    np.save(os.path.join(ROOT, "ok_f2_special_as_f4.npy"), f2.astype("<f4"))
    f2inf = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, np.inf, 0.0, 0.0]], dtype="<f2")
    shard_dir("bad_f2_inf", [(ids(0, 2), f2inf)])
    # Finite rows whose squared norm reaches float32's largest / 4: a distance to such a row
    # could overflow to +Inf, so they are refused.
    big = feats(4, 3)
    big[1, :] = 1e19  # squared norm 8e38: finite in float64, not in float32
    shard_dir("bad_huge_norm", [(ids(0, 3), big)])
    np.save(os.path.join(ROOT, "query_huge_norm.npy"), big[1])
    shard_dir("bad_duplicate_ids", [(ids(0, 3), feats(1, 3)), (ids(2, 2), feats(2, 2))])


if __name__ == "__main__":
    main()
