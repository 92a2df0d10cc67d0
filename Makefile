# wasmlet: containerd shim v2 for WebAssembly.
#
#   make demo     set up and run a wasm container through a private containerd
#   make test     the whole test suite (unit + end-to-end; end-to-end needs root)
#   make critest  CRI conformance: critest against each containerd's CRI, each engine's handler
#   make fuzz     the fuzz targets of fuzz/ for FUZZ_SECONDS (60) each (cargo-fuzz, nightly;
#                 `make test` runs each for TEST_FUZZ_SECONDS, 15)
#   make compare  each engine's shim against its engine's own CLI on the WASI fixtures
#   make bench    start-to-exit time and memory against runc; HTTP req/s against wasmtime serve;
#                 pull-then-run from a registry against busybox and a native build
#   make installer-image  the node-installer image as an OCI archive (no Docker needed)
#   make kind-e2e the Kubernetes path on a kind cluster (needs Docker, kind, kubectl)
#   make install  install the shims into $(PREFIX)/bin (ENGINES="wasmtime wasmer wamr wasmedge")

PREFIX   ?= /usr/local
CARGO    ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
# Tools no package registry here offers (containerd 2.3.4, cri-tools, WasmEdge), when the
# ../shared folder is beside the project; `make shared` unpacks them under the target dir.
SHARED     ?= $(abspath $(CURDIR)/../shared)
SHARED_OUT := $(TARGET_DIR)/shared
SHARED_TARBALLS := $(wildcard $(SHARED)/containerd/containerd-2.3.4-linux-amd64.tar.xz \
	$(SHARED)/cri-tools/cri-tools-1.36.0-linux-amd64.tar.xz \
	$(SHARED)/wasmedge/wasmedge-0.17.1-debian12-x86_64.tar.xz)
SHARED_WASMEDGE := $(if $(filter %wasmedge-0.17.1-debian12-x86_64.tar.xz,$(SHARED_TARBALLS)),$(SHARED_OUT)/wasmedge-0.17.1,)
# Every engine: Wasmtime, Wasmer and WAMR always; WasmEdge when ../shared brings libwasmedge
# (or WASMEDGE_DIR names one).
ENGINES  ?= wasmtime wasmer wamr $(if $(or $(SHARED_WASMEDGE),$(WASMEDGE_DIR)),wasmedge,)
ifneq ($(filter wasmedge,$(ENGINES)),)
ifeq ($(WASMEDGE_DIR),)
export WASMEDGE_DIR := $(SHARED_WASMEDGE)
endif
endif
APT_PACKAGES := containerd runc protobuf-compiler pkg-config libseccomp-dev busybox-static \
	containernetworking-plugins iproute2 gcc xz-utils docker-registry skopeo umoci \
	$(if $(filter wasmedge,$(ENGINES)),libclang-dev libllvm15 libspdlog1.10 libfmt9,) \
	$(if $(filter wamr,$(ENGINES)),cmake libclang-dev,)
WASM_TARGETS := wasm32-wasip1 wasm32-wasip2
# The cargo features of the engines besides Wasmtime (always built).
SHIM_ENGINE_FEATURES := $(filter wasmedge wasmer wamr,$(ENGINES))
SHIM_FEATURES := $(if $(SHIM_ENGINE_FEATURES),--features "$(foreach f,$(SHIM_ENGINE_FEATURES),wasmlet-shim/$(f))",)
# The pause process of the locally built sandbox image: static, for this host.
HOST_TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')

.PHONY: all deps shared build examples test critest fuzz demo bench compare install uninstall lint fmt clean kind-e2e installer-image

all: build

# Debian packages and rustup targets; skipped when already present.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install$$missing" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@installed="$$(rustup target list --installed)"; for t in $(WASM_TARGETS); do \
		echo "$$installed" | grep -qx $$t || rustup target add $$t; done

# Unpack what ../shared holds (once each); nothing when it is absent.
shared:
	@mkdir -p $(SHARED_OUT); for t in $(SHARED_TARBALLS); do \
		stamp=$(SHARED_OUT)/.$$(basename $$t).unpacked; \
		[ -e $$stamp ] || { echo "unpacking $$t"; tar -xJf $$t -C $(SHARED_OUT) && touch $$stamp; } || exit 1; \
	done

build: shared
	$(CARGO) build --release -p wasmlet-shim $(SHIM_FEATURES)
	$(CARGO) build --release -p wasmlet-oci -p wasmlet-tests --bins

examples:
	$(CARGO) build --release -p hello -p wagi-hello --target wasm32-wasip1
	$(CARGO) build --release -p hello -p http-hello --target wasm32-wasip2
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p pause --target $(HOST_TRIPLE)

# The Bytecode Alliance's `wkg`, whose `wkg oci push` writes the wasm artifacts the registry
# tests pull (built once into the target dir).
WKG_VERSION := 0.16.1
TEST_WKG := $(TARGET_DIR)/bench/bin/wkg

$(TEST_WKG):
	$(CARGO) install --locked --root $(TARGET_DIR)/bench wkg@$(WKG_VERSION)

# Unit tests (no root) and the end-to-end suite against a private containerd; then every
# fuzz target for TEST_FUZZ_SECONDS (a bounded run; `make fuzz` runs longer).
TEST_FUZZ_SECONDS ?= 15

test: deps build examples $(TEST_WKG)
	WASMLET_SHIM_DIR=$(TARGET_DIR)/release WASMLET_ENGINES="$(ENGINES)" WASMLET_WKG=$(TEST_WKG) $(CARGO) test --release --workspace $(SHIM_FEATURES)
	FUZZ_SECONDS=$(TEST_FUZZ_SECONDS) fuzz/run.sh

# critest (cri-tools 1.36.0 of ../shared) against containerd's CRI: the wasmtime handler on
# each version, every other engine's on the newest; part of `make test`. With
# WASMLET_CRITEST_BASELINE=1 it also runs the runc handler and compares.
critest: deps build
	WASMLET_SHIM_DIR=$(TARGET_DIR)/release WASMLET_ENGINES="$(ENGINES)" $(CARGO) test --release -p wasmlet-tests --test conformance -- --nocapture

demo: deps build examples
	WASMLET_SHIM_DIR=$(TARGET_DIR)/release $(TARGET_DIR)/release/wasmlet-demo

# A large real-world module for the compile-cache figures: wasm-tools built for WASI.
WASM_TOOLS_VERSION := 1.263.0
BIG_MODULE := $(TARGET_DIR)/bench/bin/wasm-tools.wasm

$(BIG_MODULE):
	$(CARGO) install --locked --target wasm32-wasip1 --root $(TARGET_DIR)/bench wasm-tools@$(WASM_TOOLS_VERSION)

# The requests/s baseline: `wasmtime serve` of the Wasmtime version the shim embeds.
WASMTIME_CLI_VERSION := 48.0.8
BENCH_WASMTIME := $(TARGET_DIR)/bench/bin/wasmtime

$(BENCH_WASMTIME):
	$(CARGO) install --locked --root $(TARGET_DIR)/bench wasmtime-cli@$(WASMTIME_CLI_VERSION)

# The native equivalent of the hello example for the pull figures: static, musl.
NATIVE_MUSL := $(shell uname -m)-unknown-linux-musl

bench: deps build examples $(BIG_MODULE) $(BENCH_WASMTIME)
	rustup target list --installed | grep -qx $(NATIVE_MUSL) || rustup target add $(NATIVE_MUSL)
	$(CARGO) build --release -p hello --target $(NATIVE_MUSL)
	WASMLET_SHIM_DIR=$(TARGET_DIR)/release BENCH_BIG_MODULE=$(BIG_MODULE) BENCH_WASMTIME=$(BENCH_WASMTIME) $(TARGET_DIR)/release/wasmlet-bench

# Each shim against its engine's CLI (same module, args, env, directory as /): wasmtime-cli
# and wasmer-cli from crates.io, WasmEdge's from ../shared; WAMR's iwasm when IWASM names one.
WASMER_CLI_VERSION := 7.4.2
COMPARE_WASMER := $(TARGET_DIR)/bench/bin/wasmer
SHARED_WASMEDGE_CLI := $(if $(SHARED_WASMEDGE),$(SHARED_WASMEDGE)/bin/wasmedge,)

$(COMPARE_WASMER):
	$(CARGO) install --locked --root $(TARGET_DIR)/bench --no-default-features --features sys,wat,singlepass wasmer-cli@$(WASMER_CLI_VERSION)

compare: deps build $(BENCH_WASMTIME) $(COMPARE_WASMER)
	WASMLET_SHIM_DIR=$(TARGET_DIR)/release COMPARE_WASMTIME=$(BENCH_WASMTIME) COMPARE_WASMER=$(COMPARE_WASMER) \
		COMPARE_WASMEDGE=$(SHARED_WASMEDGE_CLI) COMPARE_IWASM=$(IWASM) \
		LD_LIBRARY_PATH=$(if $(SHARED_WASMEDGE),$(SHARED_WASMEDGE)/lib,) $(TARGET_DIR)/release/wasmlet-compare

# The node-installer image as an OCI archive (no Docker needed): push it, or import it.
installer-image: build
	mkdir -p $(TARGET_DIR)/images
	ENGINES="$(ENGINES)" SHIM_DIR=$(TARGET_DIR)/release deploy/kubernetes/installer/build-image.sh $(TARGET_DIR)/images/node-installer.tar

# Fuzz the parsers of untrusted input (cargo-fuzz, nightly): FUZZ_SECONDS per target.
fuzz: examples
	fuzz/run.sh

# Kubernetes on a kind cluster (needs Docker, kind and kubectl; see deploy/kind/e2e.sh).
kind-e2e:
	deploy/kind/e2e.sh

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	for e in $(ENGINES); do install -m 0755 $(TARGET_DIR)/release/containerd-shim-$$e-v1 $(DESTDIR)$(PREFIX)/bin/; done

uninstall:
	for e in wasmtime wasmedge wasmer wamr; do rm -f $(DESTDIR)$(PREFIX)/bin/containerd-shim-$$e-v1; done

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	DOCS_RS=1 $(CARGO) clippy -p wasmlet-shim --features wasmedge,wasmer,wamr --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
