#!/usr/bin/env bash
# The impaired rows of `make bench`: request latency through a bad path. prismd (1 worker,
# the secure transport) and ENet's echo (enet_echo --server) each sit behind their own
# impairment_proxy (tests/bench/impairment_proxy_main.cpp): 10% loss, 5% duplication and
# 10% reordering in both directions, no added delay (loopback), fixed seeds; the first 4
# datagrams of each client, each way, pass untouched (--spare-first: the handshakes, whose
# retry timers back off, so that a run measures the path rather than the luck of 16
# connection setups under loss, and never fails on one). With 8
# clients x 4 requests in flight and 100-byte payloads, it prints:
#   (p) prism ordered: prism-bench, open loop at 2000 requests/s, --delivery ordered
#   (q) prism unordered: the same with --delivery unordered
#   (r) ENet: enet_echo --client, reliable packets on one channel (ordered, as (p));
#       closed loop, since enet_echo has no --rate, so its percentiles are not those of
#       a fixed schedule. A peer left without a reply for ENET_REPLY_TIMEOUT_MS ends its
#       run, reported as timeouts=1 over the time measured; at enet_echo's own 1 s, about
#       one 3 s run in three ended so on this path, hence 5 s here. The row is skipped
#       when the build has no ENet
# against the issue's targets: p99 <= 20 ms ordered, <= 5 ms unordered, and no request
# unanswered after 1 s (prism-bench counts those as timeouts and leaves them out of the
# percentiles); then what each proxy did to its traffic.
# Exits non-zero if a run fails or completes nothing; a missed target is printed, never
# enforced.
#
# usage: tests/bench/run_impaired_bench.sh BUILD_DIR
# env:   DURATION (seconds measured, default 5), WARMUP (0.5), RATE (2000),
#        ENET_REPLY_TIMEOUT_MS (5000), SMOKE=1 (0.5 s each, for `make test`)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_settings run_impaired_bench "${1:-}"
rate=${RATE:-2000}
enet_reply_timeout_ms=${ENET_REPLY_TIMEOUT_MS:-5000}
# The path, the same both ways (the proxy seeds server-to-client draws with seed + 1).
impairment=(--loss 0.10 --duplicate 0.05 --reorder 0.10 --spare-first 4)
load_options=(--clients 8 --inflight 4 --payload-size 100 --duration "$duration"
              --warmup "$warmup")

for bin in prismd prism-bench impairment_proxy; do
  if [[ ! -x $build/$bin ]]; then
    echo "run_impaired_bench: $build/$bin is missing (build first)" >&2
    exit 1
  fi
done


# stop_proxy NAME: stops the proxy started as NAME (SIGTERM), waits for it and sets
# $proxy_counters to the counters it prints as it exits.
stop_proxy() {
  local name=$1 pid=${proxy_pids[$1]} rc=0 kept=() p
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  for p in "${servers[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  servers=("${kept[@]}")
  proxy_counters=$(grep -o 'event=stopped .*' "$tmp/$name.log" | tail -n 1 || true)
  if ((rc != 0)) || [[ -z $proxy_counters ]]; then
    echo "run_impaired_bench: $name exited with status $rc; its log ends with:" >&2
    tail -n 20 "$tmp/$name.log" >&2
    exit 1
  fi
  proxy_counters=${proxy_counters#event=stopped }
  proxy_counters=${proxy_counters#signal=SIGTERM }
}

# start_proxy NAME UPSTREAM_PORT SEED: an impairment_proxy in front of 127.0.0.1:PORT.
# Sets $port to the proxy's.
declare -A proxy_pids
start_proxy() {
  start_server "$1" "$build/impairment_proxy" --upstream "127.0.0.1:$2" "${impairment[@]}" \
    --seed "$3"
  proxy_pids[$1]=${servers[-1]}
}

# Every session comes from one address, the proxy's (start_bench_prismd).
start_bench_prismd prismd 1
prism_port=$port
server_key=$tmp/prismd-state/server.pub
if [[ ! -s $server_key ]]; then
  echo "run_impaired_bench: prismd is listening but wrote no $server_key" >&2
  exit 1
fi
start_proxy proxy-prism "$prism_port" 1
prism_proxy_port=$port

enet_proxy_port=""
if [[ -x $build/enet_echo ]]; then
  start_server enet "$build/enet_echo" --server --host 127.0.0.1 --port 0
  start_proxy proxy-enet "$port" 3
  enet_proxy_port=$port
else
  echo "run_impaired_bench: $build/enet_echo is missing (no libenet-dev at configure): no ENet row" >&2
fi

# Connecting is not what is measured: within prism-bench's default 2 s a session gets 4
# INITIALs, and about one session in 300 found all of them (or their answers) lost here.
prism_run=(--server "127.0.0.1:$prism_proxy_port" --server-key "$server_key" --rate "$rate"
           --connect-timeout 10 "${load_options[@]}")
bench impaired-ordered "${prism_run[@]}" --delivery ordered
ordered=$result
bench impaired-unordered "${prism_run[@]}" --delivery unordered
unordered=$result
enet=""
if [[ -n $enet_proxy_port ]]; then
  run_load "$build/enet_echo" impaired-enet --client --server "127.0.0.1:$enet_proxy_port" \
    --reply-timeout-ms "$enet_reply_timeout_ms" "${load_options[@]}"
  enet=$result
fi

stop_proxy proxy-prism
prism_counters=$proxy_counters
enet_counters=""
if [[ -n $enet_proxy_port ]]; then
  stop_proxy proxy-enet
  enet_counters=$proxy_counters
fi

echo
echo "impaired path: loss 0.10, duplicate 0.05, reorder 0.10 both ways, no added delay;" \
  "8 clients x 4 in flight, 100 B"
# row LETTER NAME RESULT LOAD TARGET_US: one summary line; TARGET_US 0 for none.
row() {
  awk -v letter="$1" -v name="$2" -v load="$4" -v target="$5" \
      -v rps="$(field "$3" rps)" -v p50="$(field "$3" p50_us)" -v p99="$(field "$3" p99_us)" \
      -v p999="$(field "$3" p999_us)" -v timeouts="$(field "$3" timeouts)" '
    function verdict(ok) { return ok ? "met" : "NOT met" }
    BEGIN {
      line = sprintf("(%s) %-16s %-23s rps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f",
                     letter, name ":", load, rps, p50, p99, p999)
      if (target > 0) {
        line = line sprintf(" (target p99 <= %d ms: %s)", target / 1000, verdict(p99 <= target))
        line = line sprintf(" unanswered_1s=%d (target 0: %s)", timeouts, verdict(timeouts == 0))
      }
      print line
    }'
}
row p "prism ordered" "$ordered" "open loop $rate/s" 20000
row q "prism unordered" "$unordered" "open loop $rate/s" 5000
if [[ -n $enet ]]; then
  row r "enet" "$enet" "closed loop (no --rate)" 0
  echo "    enet_echo has no open loop, and a peer ${enet_reply_timeout_ms} ms without a reply" \
    "ends its run (--reply-timeout-ms; its default, 1000, often ends it on this path)"
  if (($(field "$enet" timeouts) > 0)); then
    echo "    this run: ENet left a request unanswered for ${enet_reply_timeout_ms} ms (its" \
      "retransmission timeout doubles per loss) after $(field "$enet" seconds) s measured"
  fi
fi
echo "proxy prism (both prism rows): $prism_counters"
if [[ -n $enet_counters ]]; then echo "proxy enet: $enet_counters"; fi
