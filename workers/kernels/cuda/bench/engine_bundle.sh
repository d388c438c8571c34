#!/usr/bin/env bash
# Run HERE (the development machine, which has Squeeze's Debian dependencies
# and nvcc but no GPU), before a call on a lent GPU machine: builds the
# engine's device tests (tests/unit/device -> unit_device: GPTQ through the
# engine and the stage runner on cuda vs cpu) with CUDA on, and packs them
# into build-cuda-carry/engine (git-ignored, carried by the device tool):
#   unit_device          debug info stripped
#   libsqueeze_cuda_plugin.so   the GPU code the engine dlopens (beside unit_device)
#   lib/                 the shared libraries it needs that a CUDA image may
#                        lack (Abseil, yaml-cpp, ...); CUDA's own libraries
#                        (cudart, cuBLAS, cuSOLVER) come from the GPU machine
#   lib-std/             this machine's libstdc++ / libgcc_s, used there only
#                        if the binary does not start without them
#   shared/              stories260K (HF) and the TinyStories texts
# The engine cannot be built on the GPU machine (no Abseil, Eigen, gRPC there).
# usage: workers/kernels/cuda/bench/engine_bundle.sh [BUILD_DIR]   (default build-cuda-int)
# Then: engine_device_run.sh on the GPU machine (see workers/kernels/cuda/README.md).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
B=${1:-build-cuda-int}
SHARED=${SQUEEZE_SHARED:-$(cd .. && pwd)/shared}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/squeeze-ccache} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=1
cmake -S . -B "$B" -G Ninja > /dev/null
grep -q '^CMAKE_CUDA_COMPILER:' "$B/CMakeCache.txt" && ! grep -q '^SQUEEZE_CUDA:BOOL=OFF' "$B/CMakeCache.txt" ||
  { echo "engine_bundle: $B is not a CUDA build (nvcc not found or -DSQUEEZE_CUDA=OFF)" >&2; exit 1; }
cmake --build "$B" -j"${JOBS:-2}" --target unit_device
D=build-cuda-carry/engine
rm -rf "$D"
mkdir -p "$D/lib" "$D/lib-std" "$D/shared/models/stories260K" "$D/shared/data/tinystories"
objcopy --strip-debug "$B/tests/unit/device/unit_device" "$D/unit_device"
# The GPU code (engine/device loads it from beside the executable first).
objcopy --strip-debug "$B/workers/kernels/cuda/libsqueeze_cuda_plugin.so" "$D/libsqueeze_cuda_plugin.so"
ldd "$D/unit_device" | awk '/=> \// {print $3}' | while read -r lib; do
  base=$(basename "$lib")
  case "$base" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libresolv.so*) ;;  # glibc: the GPU machine's
    libcuda*|libcublas*|libcusolver*|libcusparse*|libnvJitLink*|libnvrtc*) ;;        # CUDA: the GPU machine's
    libstdc++.so*|libgcc_s.so*) cp -L "$lib" "$D/lib-std/" ;;
    *) cp -L "$lib" "$D/lib/" ;;
  esac
done
cp -r "$SHARED/models/stories260K/hf" "$D/shared/models/stories260K/"
cp "$SHARED/data/tinystories/train.txt" "$SHARED/data/tinystories/valid.txt" "$D/shared/data/tinystories/"
# device_run.sh (the standalone kernel tests) builds GoogleTest from here.
[ -d build-cuda-carry/googletest ] || cp -r /usr/src/googletest build-cuda-carry/googletest
git rev-parse HEAD > "$D/commit.txt" 2>/dev/null || true
git status --short >> "$D/commit.txt" 2>/dev/null || true
echo "engine_bundle: $(du -sh "$D" | cut -f1) in $D, $(du -sh build-cuda-carry | cut -f1) in build-cuda-carry (the device tool carries at most 64 MiB with the working tree)"
ldd "$D/unit_device" "$D/libsqueeze_cuda_plugin.so" | grep -E 'libcu|libnv' | sort -u | sed 's/^/  needs on the GPU machine: /'
