#!/usr/bin/env python3
"""Regenerates testdata/images/reference_features.npy: the Python pipeline's embedding of every
image listed in testdata/images/reference_ids.txt, in that order, float32 [N, 1280].

The pipeline is the seed's (part 4 of the series), with no change:
    PIL.Image.open(path).convert("RGB").resize((224, 224))   # Pillow's default filter: bicubic
    np.asarray(image, dtype=np.float32) / 255                 # [224, 224, 3], RGB in [0, 1]
    onnxruntime: input "inputs:0" [1, 224, 224, 3] (NHWC) -> output "feature_vector" [1, 1280]
one image per run, as the seed embeds its query. embed's fidelity test
(go test ./embed -run Pipeline) asserts that simsearch reproduces these floats bit for bit.

The committed file was made with Pillow 9.4 (libjpeg-turbo 2.1.5) and onnxruntime 1.30; other
versions decode or compute differently (Pillow's JPEG decoder follows its libjpeg, ONNX Runtime's
kernels change between releases), so the script warns when the versions differ.

Needs numpy, Pillow and onnxruntime (not installable on every machine; the tests do not need
this script). Usage, from anywhere:
    python3 testdata/make_reference_features.py           # rewrites the reference (atomically)
    python3 testdata/make_reference_features.py --check   # compares with the committed one only
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import onnxruntime
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images")
IDS = os.path.join(IMAGES, "reference_ids.txt")
OUT = os.path.join(IMAGES, "reference_features.npy")
MODEL = os.path.join(HERE, "model", "mobilenet_v2_feature_vector.onnx")
INPUT, OUTPUT, SIZE, DIM = "inputs:0", "feature_vector", 224, 1280
MADE_WITH = {"Pillow": ("9.4", PIL.__version__), "onnxruntime": ("1.30", onnxruntime.__version__)}


def embed(session, path):
    """The pipeline above for one image: a float32 vector of DIM."""
    with Image.open(path) as im:
        rgb = im.convert("RGB").resize((SIZE, SIZE))
    x = np.asarray(rgb, dtype=np.float32) / np.float32(255)
    assert x.dtype == np.float32 and x.shape == (SIZE, SIZE, 3), (path, x.dtype, x.shape)
    (y,) = session.run([OUTPUT], {INPUT: x[np.newaxis]})
    assert y.shape == (1, DIM), (path, y.shape)
    return y[0].astype(np.float32, copy=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed reference; write nothing")
    args = ap.parse_args()

    for name, (want, have) in MADE_WITH.items():
        if not have.startswith(want + "."):
            print(f"warning: {name} {have}; the reference was made with {want}.x and may differ", file=sys.stderr)

    with open(IDS) as f:
        ids = [line.strip() for line in f if line.strip()]
    if not ids:
        sys.exit(f"{IDS}: no image names")
    session = onnxruntime.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    feats = np.stack([embed(session, os.path.join(IMAGES, name)) for name in ids])
    assert feats.dtype == np.float32 and feats.shape == (len(ids), DIM)
    if not np.isfinite(feats).all():
        sys.exit("the model produced non-finite features")

    if args.check:
        old = np.load(OUT)
        if old.shape != feats.shape:
            sys.exit(f"{OUT}: shape {old.shape}, the pipeline gives {feats.shape}")
        dist = np.linalg.norm(old.astype(np.float64) - feats.astype(np.float64), axis=1)
        same = (old.view(np.uint32) == feats.view(np.uint32)).all(axis=1)
        for name, d, s in zip(ids, dist, same):
            print(f"{name}\t{'bit-identical' if s else f'L2 distance {d:.3g}'}")
        sys.exit(0 if same.all() else 1)

    # Atomic: a crash leaves the old reference, never half of a new one.
    fd, tmp = tempfile.mkstemp(dir=IMAGES, prefix=".reference_features.", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, feats)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; np.save to a path would honour the umask
        os.replace(tmp, OUT)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {OUT}: {feats.shape[0]} x {feats.shape[1]} float32", file=sys.stderr)


if __name__ == "__main__":
    main()
