# syntax=docker/dockerfile:1
# Squeeze images: squeeze-coordinator, squeeze-worker and the squeeze CLI.
#
#   docker build -t squeeze:cpu .                                   # CPU image (default)
#   docker build -t squeeze:cuda --build-arg FLAVOR=cuda .          # CUDA image (UNTESTED, see below)
#
# Stage "build" is Debian bookworm with every build dependency from
# scripts/install-deps.sh (the same list `make test` uses) and a Release build
# of the three programs. Stage "runtime" is bookworm-slim with only the Debian
# packages that own the shared libraries the three binaries link (found with
# ldd + dpkg -S in the build stage, so the list never goes stale), the binaries
# in /usr/local/bin and the example recipes in /usr/share/squeeze/examples.
# It runs as uid 10001; state goes in /var/lib/squeeze (mount a volume).
#
# FLAVOR=cuda (UNTESTED here: no docker daemon and no CUDA toolkit on the
# machines this was written on) adds Debian's non-free CUDA toolkit
# (nvidia-cuda-toolkit, CUDA 11.8) to the build stage, configures with
# -DSQUEEZE_CUDA=ON for CUDA_ARCHITECTURES, and the runtime stage gets the CUDA
# runtime libraries the binaries link (found the same way). The NVIDIA driver
# (libcuda, nvidia-smi) comes from the node through the NVIDIA container
# toolkit / device plugin, not from the image.
#
# tests/integration/deploy/deploy_test.sh checks offline that every file this
# Dockerfile copies exists and is not excluded by .dockerignore, that the
# build targets exist, and that the binary paths match where CMake puts them.

ARG FLAVOR=cpu

FROM debian:bookworm AS build
ARG FLAVOR
ARG CUDA_ARCHITECTURES="80;90"
ENV DEBIAN_FRONTEND=noninteractive
# The CUDA toolkit lives in bookworm's non-free component.
RUN if [ "$FLAVOR" = cuda ]; then \
      sed -i 's/^Components: main$/Components: main contrib non-free non-free-firmware/' \
        /etc/apt/sources.list.d/debian.sources && \
      apt-get update -qq && apt-get install -y -qq --no-install-recommends nvidia-cuda-toolkit; \
    fi
WORKDIR /src
# Dependencies first (a layer that survives source edits). The npm packages of
# tests/node are test-only: skipped here.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN apt-get update -qq && SQUEEZE_SKIP_NODE_PACKAGES=1 bash scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
# FLAVOR=cuda also builds the GPU plugin (libsqueeze_cuda_plugin.so: cuBLAS /
# cuSOLVER GPTQ, loaded by the worker on first use from beside its executable).
RUN cuda_flags=""; plugin=""; \
    if [ "$FLAVOR" = cuda ]; then \
      cuda_flags="-DSQUEEZE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHITECTURES"; plugin=squeeze_cuda_plugin; \
    fi; \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release $cuda_flags && \
    cmake --build /build --target squeeze-coordinator squeeze-worker squeeze $plugin
# The binaries (and the plugin), stripped, and the Debian packages owning every library they link.
RUN mkdir -p /out/bin && \
    cp /build/server/coordinator/squeeze-coordinator /build/workers/worker/squeeze-worker /build/client/squeeze /out/bin/ && \
    if [ "$FLAVOR" = cuda ]; then cp /build/workers/kernels/cuda/libsqueeze_cuda_plugin.so /out/bin/; fi && \
    strip --strip-unneeded /out/bin/* && \
    for lib in $(ldd /out/bin/* | awk '/=> \//{print $3}' | sort -u); do \
      dpkg -S "$lib" 2>/dev/null || dpkg -S "$(realpath "$lib")" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null \
        || { echo "no Debian package owns $lib" >&2; exit 1; }; \
    done | cut -d: -f1 | sort -u >/out/runtime-packages && \
    cat /out/runtime-packages

FROM debian:bookworm-slim AS runtime
ARG FLAVOR
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN if [ "$FLAVOR" = cuda ]; then \
      sed -i 's/^Components: main$/Components: main contrib non-free non-free-firmware/' \
        /etc/apt/sources.list.d/debian.sources; \
    fi && \
    apt-get update -qq && \
    xargs -a /tmp/runtime-packages apt-get install -y -qq --no-install-recommends ca-certificates && \
    rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /out/bin/ /usr/local/bin/
COPY deploy/examples/ /usr/share/squeeze/examples/
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/squeeze --create-home squeeze
USER 10001:10001
WORKDIR /var/lib/squeeze
# 50051 gRPC (coordinator), 9100 / 9101 Prometheus /metrics (coordinator / worker).
EXPOSE 50051 9100 9101
CMD ["squeeze-coordinator", "--listen", "0.0.0.0:50051", "--data-dir", "/var/lib/squeeze/data", \
     "--metrics-listen", "0.0.0.0:9100"]
