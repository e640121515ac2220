#!/usr/bin/env bash
# Packs what bench/gpu/run.sh needs on a GPU machine that has neither network nor Node.js into
# one archive, to unpack in a checkout of the same commit there (see bench/gpu/README.md):
#
#   bench/gpu/pack.sh [--backend cuda] [--out FILE]        (default .gpu-pack/autoact-gpu.tar.xz)
#
# The archive holds node's binary (as node-bin), dist/, the runtime packages of node_modules
# without node-llama-cpp's prebuilt engines and llama.cpp source bundle (the suite's training
# runs use llama-bench and autoact-train), and the native build's binaries
# (native/build/<backend>/bin), built beforehand here with `npm run build:native -- --backend B
# --portable` (code for any x86-64 CPU with AVX2, not this one's own instructions).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
backend=cuda
out="$root/.gpu-pack/autoact-gpu.tar.xz"
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "pack.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
cd "$root"
bin="native/build/$backend/bin"
for f in "$bin/autoact-train" "$bin/llama-bench" dist/src/cli/main.js; do
    [ -f "$f" ] || { echo "pack.sh: $f is missing: run npm run build and npm run build:native -- --backend $backend --portable first" >&2; exit 2; }
done
# binaries built for this CPU's own instructions may stop with SIGILL on the other machine's
grep -q '^GGML_NATIVE:BOOL=OFF$' "native/build/$backend/CMakeCache.txt" 2>/dev/null || {
    echo "pack.sh: native/build/$backend was built for this CPU only: run npm run build:native -- --backend $backend --portable first" >&2; exit 2; }
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$(command -v node)" "$stage/node-bin"
# the runtime dependency tree, as npm resolves it
npm ls --omit=dev --parseable --all 2>/dev/null | grep "/node_modules/" | sed "s|^$root/||" | sort -u > "$stage/packages"
mkdir -p "$(dirname "$out")"
tar -cf - --exclude='node_modules/@node-llama-cpp' --exclude='node_modules/node-llama-cpp/llama/gitRelease.bundle' \
    --exclude='*.md' --exclude='*.map' --exclude='*.d.ts' \
    -C "$root" dist "$bin/autoact-train" "$bin/llama-bench" \
    -T "$stage/packages" -C "$stage" node-bin \
    | xz -T0 -9e > "$out"
echo "$out: $(du -h "$out" | cut -f1)"
