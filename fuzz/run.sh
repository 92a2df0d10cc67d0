#!/usr/bin/env bash
# `make fuzz`: run every fuzz target for FUZZ_SECONDS (default 60) each, on a corpus seeded
# from fuzz/seeds/ and the built examples and .wat fixtures, kept under the target dir
# between runs; print the executions each made. Needs cargo-fuzz and a nightly toolchain
# (installed when missing). A crash stops the run with libFuzzer's report and its input
# under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-spec image_document rootfs_resolve http_settings wasm_sniff wagi_response}"
target_dir="${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}"
corpus_root="$target_dir/fuzz-corpus"

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

# The targets' scratch files (rootfs_resolve's rootfs, made once per process) go to a
# directory of this run's own, removed at the end.
TMPDIR="$(mktemp -d -t wasmlet-fuzz.XXXXXX)"
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

summary=""
for t in $targets; do
  corpus="$corpus_root/$t"
  mkdir -p "$corpus"
  cp seeds/"$t"/* "$corpus"/
  if [ "$t" = wasm_sniff ]; then
    # Real modules and components: the examples, and the .wat fixtures compiled by the tests.
    for f in "$target_dir"/wasm32-wasip1/release/*.wasm "$target_dir"/wasm32-wasip2/release/*.wasm; do
      [ -f "$f" ] && cp "$f" "$corpus/$(basename "$(dirname "$(dirname "$f")")")-$(basename "$f")"
    done
  fi
  log="$corpus_root/$t.log"
  set +e
  cargo +nightly fuzz run --release "$t" "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 |
    tee "$log" | grep -E "^(==|INFO: Seed|Done)|panicked|SUMMARY"
  status=${PIPESTATUS[0]}
  set -e
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -1)
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $t FAILED (exit $status); its log: $log" >&2
    exit "$status"
  fi
  summary="$summary  $t: ${runs:-?}, corpus $(ls "$corpus" | wc -l) inputs\n"
done
printf "fuzzing done, %s s per target:\n%b" "$seconds" "$summary"
