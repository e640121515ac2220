#!/usr/bin/env bash
# Prepares a machine without a GPU to build the CUDA binaries for a lent GPU machine
# (bench/gpu/README.md, "On a lent machine"): CUDA's compiler is there, cuBLAS and the driver
# are not. Run as root, once:
#
#   bench/gpu/cross-build-setup.sh [--cuda DIR]          (default DIR: /usr/local/cuda)
#
# - cuBLAS from NVIDIA's nvidia-cublas wheel (pip download: PyPI or the machine's own index),
#   unpacked into /opt/nvidia-cublas and linked into DIR's lib and include folders;
# - a stub libcuda.so in DIR/lib/stubs holding the driver's symbols that ggml-cuda calls (its VMM
#   memory pool): enough to link; the GPU machine's real driver is loaded at run time.
set -euo pipefail
cuda=/usr/local/cuda
while [ $# -gt 0 ]; do
    case "$1" in
        --cuda) cuda="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "cross-build-setup.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -x "$cuda/bin/nvcc" ] || { echo "cross-build-setup.sh: no nvcc in $cuda/bin" >&2; exit 2; }
lib="$(readlink -f "$cuda/lib64" 2>/dev/null || readlink -f "$cuda/lib")"
major="$("$cuda/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')"

if [ ! -e "$lib/libcublas.so" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    python3 -m pip download --no-deps --only-binary=:all: -d "$work" "nvidia-cublas>=$major,<$((major + 1))" \
        || python3 -m pip download --no-deps --only-binary=:all: -d "$work" "nvidia-cublas-cu$major"
    rm -rf /opt/nvidia-cublas && mkdir -p /opt/nvidia-cublas
    python3 -m zipfile -e "$work"/nvidia_cublas*.whl /opt/nvidia-cublas
    src="$(dirname "$(find /opt/nvidia-cublas -name "libcublas.so.$major" | head -1)")"
    for f in "$src"/libcublas.so.* "$src"/libcublasLt.so.*; do
        ln -sf "$f" "$lib/$(basename "$f")"
        ln -sf "$f" "$lib/$(basename "${f%.so.*}").so"
    done
    for h in "$src"/../include/*.h; do ln -sf "$(readlink -f "$h")" "$cuda/include/"; done
    echo "cuBLAS: $(ls "$src")"
fi

if [ ! -e "$lib/stubs/libcuda.so" ] && ! ldconfig -p | grep -q "libcuda.so.1 "; then
    work2="$(mktemp -d)"
    cat > "$work2/refs.c" <<'C'
#include <cuda.h>
void * refs[] = { (void *) cuDeviceGet, (void *) cuDeviceGetAttribute, (void *) cuGetErrorString, (void *) cuMemAddressFree,
    (void *) cuMemAddressReserve, (void *) cuMemCreate, (void *) cuMemGetAllocationGranularity, (void *) cuMemMap,
    (void *) cuMemRelease, (void *) cuMemSetAccess, (void *) cuMemUnmap };
C
    # the names cuda.h maps these to (some are versioned), each a stub
    cc -c -I"$cuda/include" -o "$work2/refs.o" "$work2/refs.c"
    nm -u "$work2/refs.o" | awk '{ print "int " $2 "(void) { return 999; }" }' > "$work2/stub.c"
    mkdir -p "$lib/stubs"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$lib/stubs/libcuda.so" "$work2/stub.c"
    rm -rf "$work2"
    echo "driver stub: $lib/stubs/libcuda.so"
fi
echo "ready: CUDAARCHS=90 npm run build:native -- --backend cuda, then bench/gpu/pack.sh"
