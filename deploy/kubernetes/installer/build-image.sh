#!/bin/sh
# Build the node-installer image as an OCI archive, without Docker: Debian's static BusyBox
# (sh, awk, sed, nsenter...) as /bin/sh, install.sh, and the shims it copies onto nodes.
# `make installer-image` runs it; so does the e2e test that runs the image with runc.
#
#   build-image.sh OUT.tar [TAG]
# Environment: ENGINES ("wasmtime wasmer wamr wasmedge"), SHIM_DIR (where the built shims are),
#   WASMLET_OCI (the image builder), BUSYBOX (a static busybox).
# Load it with `ctr -n k8s.io image import OUT.tar`, or push it with any OCI tool
# (`skopeo copy oci-archive:OUT.tar docker://REGISTRY/wasmlet/node-installer:TAG`).
set -eu
cd "$(dirname "$0")/../../.."
OUT="$1"
TAG="${2:-docker.io/wasmlet/node-installer:latest}"
ENGINES="${ENGINES:-wasmtime}"
SHIM_DIR="${SHIM_DIR:-target/release}"
WASMLET_OCI="${WASMLET_OCI:-$SHIM_DIR/wasmlet-oci}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"

set -- build -t "$TAG" -o "$OUT" --entrypoint /bin/sh \
  --add "$BUSYBOX:/bin/sh" --add "$BUSYBOX:/bin/busybox" \
  --add deploy/kubernetes/installer/install.sh:/wasmlet/install.sh
for engine in $ENGINES; do
  set -- "$@" --add "$SHIM_DIR/containerd-shim-$engine-v1:/wasmlet/bin/containerd-shim-$engine-v1"
done
exec "$WASMLET_OCI" "$@"
