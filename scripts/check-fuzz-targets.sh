#!/usr/bin/env bash
# Fails unless the fuzz targets given (PKG:FuzzName, as the Makefile's FUZZ_TARGETS) are exactly
# the fuzz functions of the tree's test files: a new fuzz target make fuzz would not run, or a
# listed one that no longer exists (go test -fuzz matching nothing passes silently), is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
have=$(git ls-files '*_test.go' | xargs grep -H '^func Fuzz[A-Za-z0-9_]*(' |
	sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1:\2#' | sort)
want=$(printf '%s\n' "$@" | sort)
if [ "$have" != "$want" ]; then
	echo "FUZZ_TARGETS and the fuzz functions of the tree differ (< the tree's, > FUZZ_TARGETS):"
	diff <(echo "$have") <(echo "$want") || true
	exit 1
fi
