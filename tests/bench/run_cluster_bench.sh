#!/usr/bin/env bash
# The cluster rows of `make bench` (docs/performance.md "Cluster"): three prismd nodes (one
# worker each, only the default plugin) sharing a throwaway redis-server, and in the same
# run Redis's own pub/sub. cluster_bench keeps INFLIGHT messages in flight from one
# publisher, each done once every subscriber has it, and prints:
#   (n) cross-node publish: a publisher on node 1, one subscriber on node 2, messages/s
#       and delivery p50/p99; beside it the same on one node (publisher and subscriber on
#       node 1: no Redis in the path) and the raw Redis round trip (PUBLISH to a hiredis
#       subscriber) the cross-node path is built on, and redis-benchmark PUBLISH (no
#       subscriber: what Redis accepts per second)
#   (o) fan-out: SUBSCRIBERS sessions all on node 1, then spread over nodes 1, 2 and 3, a
#       publisher on node 1: deliveries/s of each
# Every line carries client_cpu (cluster_bench's own, over the run's wall time).
#
# usage: tests/bench/run_cluster_bench.sh BUILD_DIR
# env:   DURATION (5), WARMUP (0.5), INFLIGHT (16), SUBSCRIBERS (30), SMOKE=1 (short, for make test)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_settings run_cluster_bench "${1:-}"
subscribers=${SUBSCRIBERS:-30}
redis_requests=200000
if [[ ${SMOKE:-0} == 1 ]]; then
  subscribers=6
  redis_requests=5000
fi
inflight=${INFLIGHT:-16}
for bin in prismd cluster_bench plugins/default.so; do
  [[ -e $build/$bin ]] || { echo "run_cluster_bench: $build/$bin is missing (build first)" >&2; exit 1; }
done
for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null ||
    { echo "run_cluster_bench: $tool is not installed (scripts/setup.sh installs redis-server)" >&2; exit 1; }
done

start_redis

mkdir -p "$tmp/plugins"
cp "$build/plugins/default.so" "$tmp/plugins/"
udp=() key=() token=()
for n in 1 2 3; do
  cat >"$tmp/node-$n.yaml" <<EOF
server:
  udp: 127.0.0.1:0
  workers: 1
state_dir: $tmp/node-$n
cluster:
  redis:
    address: 127.0.0.1:$redis_port
  node_id: node-$n
  region: bench
log:
  level: info
EOF
  start_server "node-$n" "$build/prismd" --config "$tmp/node-$n.yaml" --plugins-dir "$tmp/plugins"
  udp[n]=127.0.0.1:$port
  key[n]=$tmp/node-$n/server.pub
  token[n]=$(cat "$tmp/node-$n/admin.token")
done

# cluster_bench's options for subscribers on the nodes named (round robin).
on_nodes() {
  local n
  for n in "$@"; do printf -- '--subscribe-on %s --key %s --token %s ' "${udp[n]}" "${key[n]}" "${token[n]}"; done
}
load=(--inflight "$inflight" --duration "$duration" --warmup "$warmup" --topic bench)
publisher=(--publish-on "${udp[1]}" --publisher-key "${key[1]}" --publisher-token "${token[1]}")

# run LABEL ARGS...: one cluster_bench run, its line printed and kept in $result.
run() {
  local label=$1 rc=0
  shift
  result=$("$build/cluster_bench" --label "$label" "$@") || rc=$?
  echo "$result"
  if ((rc != 0)) || [[ -z $(field "$result" messages) ]] || (($(field "$result" messages) == 0)); then
    echo "run_cluster_bench: the $label run failed (exit status $rc); node logs end with:" >&2
    tail -n 5 "$tmp"/node-*.log >&2
    exit 1
  fi
}

# shellcheck disable=SC2046  # on_nodes prints options meant to split
run same-node --mode prism $(on_nodes 1) --subscribers 1 "${publisher[@]}" "${load[@]}"
same=$result
# shellcheck disable=SC2046
run cross-node --mode prism $(on_nodes 2) --subscribers 1 "${publisher[@]}" "${load[@]}"
cross=$result
run redis-pubsub --mode redis --redis "127.0.0.1:$redis_port" --subscribers 1 "${load[@]}"
raw=$result
line=$(redis-benchmark -p "$redis_port" -c 50 -n "$redis_requests" --csv PUBLISH rawbench x | tail -n 1)
publish_rps=$(awk -F'","' '{ print $2 }' <<<"$line")
[[ -n $publish_rps && $publish_rps != 0* ]] || { echo "run_cluster_bench: redis-benchmark PUBLISH failed: $line" >&2; exit 1; }
echo "label=redis-benchmark-publish rps=$publish_rps"

# shellcheck disable=SC2046
run fanout-one-node --mode prism $(on_nodes 1) --subscribers "$subscribers" "${publisher[@]}" "${load[@]}"
one=$result
# shellcheck disable=SC2046
run fanout-three-nodes --mode prism $(on_nodes 1 2 3) --subscribers "$subscribers" "${publisher[@]}" "${load[@]}"
three=$result

echo
echo "Cluster: 3 prismd nodes (1 worker each) on one redis-server, all on this machine"
awk -v sm="$(field "$same" messages_per_s)" -v s50="$(field "$same" p50_us)" -v s99="$(field "$same" p99_us)" \
    -v cm="$(field "$cross" messages_per_s)" -v c50="$(field "$cross" p50_us)" -v c99="$(field "$cross" p99_us)" \
    -v rm="$(field "$raw" messages_per_s)" -v r50="$(field "$raw" p50_us)" -v r99="$(field "$raw" p99_us)" \
    -v pub="$publish_rps" \
    -v om="$(field "$one" deliveries_per_s)" -v tm="$(field "$three" deliveries_per_s)" \
    -v s="$subscribers" -v k="$inflight" '
  function ratio(a, b) { return b > 0 ? a / b : 0 }
  BEGIN {
    printf "%-52s %12s %10s %10s\n", "row", "messages/s", "p50 us", "p99 us"
    printf "%-52s %12.0f %10.1f %10.1f\n", sprintf("(n) one node: publish -> subscriber (%d in flight)", k), sm, s50, s99
    printf "%-52s %12.0f %10.1f %10.1f\n", "    node 1 -> Redis -> node 2", cm, c50, c99
    printf "%-52s %12.0f %10.1f %10.1f\n", "    Redis alone: PUBLISH -> hiredis subscriber", rm, r50, r99
    printf "%-52s %12.0f\n", "    redis-benchmark PUBLISH (-c 50, no subscriber)", pub
    printf "%-52s %12.3f\n", "    cross-node / Redis alone (messages/s)", ratio(cm, rm)
    printf "%-52s %12.3f\n", "    cross-node / one node (messages/s)", ratio(cm, sm)
    printf "%-52s %12.0f\n", sprintf("(o) fan-out to %d sessions on node 1: deliveries/s", s), om
    printf "%-52s %12.0f\n", "    the same spread over nodes 1, 2, 3", tm
    printf "%-52s %12.3f\n", "    three nodes / one node", ratio(tm, om)
  }'
