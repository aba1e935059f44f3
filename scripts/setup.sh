#!/usr/bin/env bash
# Installs what simsearch needs at build and run time, idempotently:
#   - Debian packages: the C headers of libjpeg-turbo and libwebp (cgo decoders), gcc;
#   - ONNX Runtime's shared library, taken from the onnxruntime-node npm package (the only
#     registry that ships a Linux build here), verified by checksum, into the user cache dir,
#     where the binary looks by default; Debian's npm is installed first when it is missing
#     (only then: once the library is in place npm is not needed).
# Usage: scripts/setup.sh [--for-tests]
#   --for-tests also installs numpy (fixture scripts, the numpy baseline, a test that reads extract's
#   shards with numpy), Debian's chromium + chromium-driver (the page's browser test), and for make
#   bench hnswlib, FAISS, the mate-backgrounds photos (bench/ann.py, bench/realish) and GNU time
#   (the peak RSS of the processes the bench runs).
set -euo pipefail

ORT_VERSION=1.30.0
ORT_TGZ_SHA256=6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75
ORT_LIB_SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
ORT_MEMBER=package/bin/napi-v6/linux/x64/libonnxruntime.so.1

cache="${XDG_CACHE_HOME:-$HOME/.cache}/simsearch"
ort_dest="$cache/onnxruntime-$ORT_VERSION/libonnxruntime.so.1"

say() { printf 'setup: %s\n' "$*" >&2; }

sha() { sha256sum "$1" | cut -d' ' -f1; }
ort_installed() { [ -f "$ort_dest" ] && [ "$(sha "$ort_dest")" = "$ORT_LIB_SHA256" ]; }

# --- Debian packages -------------------------------------------------------------------------
pkgs=(gcc libjpeg62-turbo-dev libwebp-dev curl) # curl: make demo asks the page's server
[ "${1:-}" = "--for-tests" ] && pkgs+=(python3-numpy chromium chromium-driver python3-hnswlib python3-faiss mate-backgrounds time)
# The ONNX Runtime fetch below runs `npm pack`.
ort_installed || command -v npm >/dev/null || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing Debian packages: ${missing[*]}"
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- ONNX Runtime ----------------------------------------------------------------------------
if ort_installed; then
	exit 0
fi
command -v npm >/dev/null || { say "npm is still missing after installing Debian's npm package: cannot fetch ONNX Runtime"; exit 1; }
say "fetching ONNX Runtime $ORT_VERSION (onnxruntime-node from the npm registry, ~110 MB)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null 2>&1) || { say "npm pack onnxruntime-node@$ORT_VERSION failed"; exit 1; }
tgz="$tmp/onnxruntime-node-$ORT_VERSION.tgz"
[ "$(sha "$tgz")" = "$ORT_TGZ_SHA256" ] || { say "checksum mismatch for $(basename "$tgz"): refusing to install"; exit 1; }
tar -xzf "$tgz" -C "$tmp" "$ORT_MEMBER"
[ "$(sha "$tmp/$ORT_MEMBER")" = "$ORT_LIB_SHA256" ] || { say "checksum mismatch for libonnxruntime.so.1: refusing to install"; exit 1; }
mkdir -p "$(dirname "$ort_dest")"
install -m 0644 "$tmp/$ORT_MEMBER" "$ort_dest.tmp"
mv "$ort_dest.tmp" "$ort_dest"
say "installed $ort_dest"
