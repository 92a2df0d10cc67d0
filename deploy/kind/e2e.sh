#!/usr/bin/env bash
# `make kind-e2e`: the Kubernetes path end to end on a kind cluster, for users with a Docker
# engine, kind and kubectl (this project's machines have none; CI checks this script's
# syntax and everything it builds that can be built there).
#
# Builds the shims, a kind node image with them registered as handler `wasmtime`, creates a
# cluster, loads the freshly built example images (none of ours is pulled), applies the
# RuntimeClasses, a Job (hello, WASI p1) and the sample Deployment + Service (http-hello,
# wasi:http/proxy, with a busybox sidecar pulled from Docker Hub), waits for them, checks
# logs and an HTTP response through the Service, and deletes the cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${KIND_CLUSTER:-wasmlet-e2e}"
NODE_IMAGE="wasmlet/kind-node:dev"
APP_IMAGE="docker.io/wasmlet/hello:kind-e2e"
WEB_IMAGE="docker.io/wasmlet/http-hello:kind-e2e"
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-e2e needs $tool on PATH" >&2; exit 2; }
done

make build examples
docker build -f deploy/kind/Dockerfile -t "$NODE_IMAGE" .
work=$(mktemp -d)
trap 'kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

TARGET_DIR="${CARGO_TARGET_DIR:-target}" deploy/kind/images.sh "$work" kind-e2e
kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --wait 120s
runtime=$(kubectl get nodes -o jsonpath='{.items[0].status.nodeInfo.containerRuntimeVersion}')
echo "node runtime: $runtime"
case "$runtime" in
  containerd://2.*) ;;
  *) echo "kind-e2e expects a node with containerd 2.x (KIND_NODE_IMAGE in deploy/kind/Dockerfile)" >&2; exit 1 ;;
esac
kind load image-archive --name "$CLUSTER" "$work/hello.tar"
kind load image-archive --name "$CLUSTER" "$work/http-hello.tar"

kubectl apply -f deploy/kubernetes/runtimeclass.yaml
kubectl apply -f - <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: wasmlet-hello
spec:
  backoffLimit: 0
  template:
    spec:
      runtimeClassName: wasmtime
      restartPolicy: Never
      containers:
        - name: hello
          image: $APP_IMAGE
          imagePullPolicy: Never
          args: ["kind"]
YAML
kubectl wait --for=condition=complete --timeout=120s job/wasmlet-hello
logs=$(kubectl logs job/wasmlet-hello)
echo "$logs"
grep -q "Hello from WebAssembly" <<<"$logs"

# The sample web service: wasm + native sidecar per pod, a Service in front.
sed "s|docker.io/wasmlet/http-hello:latest|$WEB_IMAGE|" deploy/kubernetes/examples/http-hello.yaml |
  kubectl apply -f -
kubectl wait --for=condition=Available --timeout=180s deployment/http-hello
kubectl logs deployment/http-hello -c web | grep -q "serving HTTP on http://0.0.0.0:8080/"
answer=$(kubectl run wasmlet-client --image=docker.io/library/busybox:1.36 --restart=Never \
  --rm -i --quiet --command -- wget -q -O - http://http-hello/)
echo "$answer"
grep -q "Hello from WebAssembly on wasmlet! (GET /)" <<<"$answer"
echo "kind-e2e: ok"
