#!/bin/sh
# Build the example app images the kind e2e loads, as OCI archives, from the freshly built
# examples (`make build examples` first): hello (WASI p1) and http-hello (wasi:http/proxy).
# deploy/kind/e2e.sh uses them; the e2e suite builds them the same way and runs them.
#
#   images.sh OUTDIR [TAG]     writes OUTDIR/hello.tar and OUTDIR/http-hello.tar
# Environment: WASMLET_OCI (the image builder; default target/release/wasmlet-oci),
#   TARGET_DIR (cargo's target directory; default target).
set -eu
cd "$(dirname "$0")/../.."
OUT="$1"
TAG="${2:-kind-e2e}"
TARGET_DIR="${TARGET_DIR:-target}"
WASMLET_OCI="${WASMLET_OCI:-$TARGET_DIR/release/wasmlet-oci}"
mkdir -p "$OUT"
"$WASMLET_OCI" build -t "docker.io/wasmlet/hello:$TAG" -o "$OUT/hello.tar" \
  "$TARGET_DIR/wasm32-wasip1/release/hello.wasm:/hello.wasm"
"$WASMLET_OCI" build -t "docker.io/wasmlet/http-hello:$TAG" -o "$OUT/http-hello.tar" \
  "$TARGET_DIR/wasm32-wasip2/release/http_hello.wasm:/http-hello.wasm"
