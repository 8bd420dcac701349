#!/usr/bin/env bash
# Runs Prism's libFuzzer targets (tests/fuzz/*_fuzz.cpp) one after the other.
#
#   tests/fuzz/run_fuzz.sh <build-fuzz dir> <seconds-per-target|SMOKE>
#
# <build-fuzz dir> is a clang tree configured with -DPRISM_FUZZ=ON and the fuzz targets
# built: `make build-fuzz` makes build-fuzz/ that way. `make fuzz` runs this script for
# FUZZ_SECONDS (default 60) per target; `make test` runs it in SMOKE mode (20000 inputs
# per target, a few seconds) through the ctest `fuzz_smoke`.
#
# - datagram_fuzz   read_header, parse_payload behind it, and the handshake layouts
#                    parse_initial/parse_retry/parse_handshake (docs/protocol.md §2, §3.1,
#                    §5.2-5.3): what each accepts is what its writer produces
# - frame_fuzz       parse_payload, then re-serialized it gives back the same frames (§3.1)
# - session_fuzz     authentic packets of fuzzed plaintext into a server Channel that echoes
#                    requests; the client Channel accepts all it sends; ordered delivery
#                    stays in order, unordered exactly once, flow control holds (§5.4-5.9)
# - handshake_fuzz   HandshakeServer::check/accept and HandshakeClient::on_datagram on any
#                    bytes and on mutated valid INITIALs and HANDSHAKEs (§5.2-5.3)
#
# Each target starts from a copy, in a temporary directory, of its seeds: those make_seeds
# wrote into <dir>/tests/fuzz/corpus/<target>/, plus any inputs committed under
# tests/fuzz/corpus/<target>/ (add a crash input there once its bug is fixed). Nothing in
# the source tree is written; the corpus grown during the run is discarded.
#
# A crash, sanitizer report, leak, timeout or out-of-memory fails the run: the input is
# kept under <dir>/fuzz-artifacts/<target>/, its path printed; reproduce it with
# `<dir>/tests/fuzz/<target> <file>`. Exit status: 0 all clean, 1 a target failed or
# usage error, 77 when <dir> does not exist (ctest counts that as skipped).
set -euo pipefail

usage() {
  echo "usage: $0 <build-fuzz dir> <seconds-per-target|SMOKE>" >&2
  exit 1
}
(($# == 2)) || usage
build=$1
budget=$2

case $budget in
  SMOKE) limit=(-runs=20000) ;;
  '' | *[!0-9]* | 0) usage ;;
  *) limit=(-max_total_time="$budget") ;;
esac

if [[ ! -d $build ]]; then
  echo "run_fuzz: no fuzz build at $build; create it with 'make build-fuzz'. Skipped." >&2
  exit 77
fi
build=$(cd "$build" && pwd)
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/prism-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Target and the largest input it takes (§2.3: 65507-byte datagrams; a sealed payload is
# that less the header and the 16-byte tag; handshake_fuzz adds its mode byte).
targets=(datagram_fuzz:65507 frame_fuzz:65473 session_fuzz:65473 handshake_fuzz:65508)

failed=0
for entry in "${targets[@]}"; do
  target=${entry%%:*}
  max_len=${entry##*:}
  bin=$build/tests/fuzz/$target
  seeds=$build/tests/fuzz/corpus/$target
  if [[ ! -x $bin || ! -d $seeds ]]; then
    echo "run_fuzz: $target or its seeds ($seeds) missing in $build; run 'make build-fuzz'" >&2
    failed=1
    continue
  fi

  corpus=$work/corpus/$target
  mkdir -p "$corpus"
  cp "$seeds"/* "$corpus"/
  if [[ -d $source_dir/corpus/$target ]]; then
    cp "$source_dir/corpus/$target"/* "$corpus"/ 2>/dev/null || true
  fi
  artifacts=$build/fuzz-artifacts/$target
  mkdir -p "$artifacts"
  log=$work/$target.log

  start=$(date +%s%N)
  if "$bin" "${limit[@]}" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1; then
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    # libFuzzer's own average counts whole seconds only: 0 for a smoke run.
    speed=$((${runs:-0} * 1000 / (elapsed_ms > 0 ? elapsed_ms : 1)))
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    echo "run_fuzz: $target ok: ${runs:-?} inputs in ${elapsed_ms} ms, $speed exec/s, ${cov:-cov: ?}"
  else
    rc=$?
    failed=1
    tail -n 60 "$log" >&2
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "run_fuzz: $target FAILED (exit $rc); input: ${crash:-none written}" >&2
    if [[ -n $crash ]]; then
      echo "run_fuzz: reproduce with $bin $crash" >&2
    fi
  fi
done
exit $failed
