#!/usr/bin/env bash
# A three-node cluster on loopback (docs/operations.md "Clustering"): a throwaway
# redis-server, and three prismd nodes sharing it as their cluster's Redis and their
# store, each with its own state dir under BUILD/cluster-demo. `make cluster-demo` runs it
# until Ctrl-C, with the rooms demo's instance made on node 1; --check (the
# cluster_demo_smoke test) checks that every node lists the three, that node 3 shows the
# instance node 1 serves and that a publish on node 1 reaches a subscriber on node 3.
#
# usage: scripts/cluster-demo.sh BUILD_DIR [--check]
# env:   DEMO_REDIS_PORT (6390), DEMO_UDP_BASE (7700: nodes on 7701-7703),
#        DEMO_WS_BASE (4700: WebSocket on 4701-4703). With --check every port is a free
#        one instead (the nodes pick theirs, Redis a random one), and the state goes to a
#        temporary directory.
set -euo pipefail

build=${1:?usage: cluster-demo.sh BUILD_DIR [--check]}
check=${2:-}
build=$(cd "$build" && pwd)
redis_port=${DEMO_REDIS_PORT:-6390}
udp_base=${DEMO_UDP_BASE:-7700}
ws_base=${DEMO_WS_BASE:-4700}
dir=$build/cluster-demo
if [[ $check == --check ]]; then
  dir=$(mktemp -d -t prism-cluster-demo.XXXXXX)
  redis_port=$((20000 + RANDOM % 40000))
fi
for bin in prismd prismctl plugins/default.so; do
  [[ -e $build/$bin ]] || { echo "cluster-demo: $build/$bin is missing (build first)" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "cluster-demo: redis-server is not installed (scripts/setup.sh)" >&2; exit 1; }

rm -rf "$dir"
mkdir -p "$dir/redis" "$dir/plugins.d"
pids=()
stop() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'stop; [[ $check == --check ]] && rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

# A port taken by something else makes redis-server exit at once: another is tried.
for attempt in 1 2 3 4 5; do
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir/redis" \
    >"$dir/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.1
  done
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  [[ $check == --check && $attempt -lt 5 ]] || { echo "cluster-demo: redis-server did not start on $redis_port:" >&2; cat "$dir/redis.log" >&2; exit 1; }
  redis_port=$((20000 + RANDOM % 40000))
done
pids+=("$redis_pid")

udp_port=() ws_port=()
for n in 1 2 3; do
  udp_port[n]=$((udp_base + n)) ws_port[n]=$((ws_base + n))
  [[ $check == --check ]] && udp_port[n]=0 ws_port[n]=0
  mkdir -p "$dir/node-$n"
  cat >"$dir/node-$n.yaml" <<EOF
server:
  udp: 127.0.0.1:${udp_port[n]}
  workers: 1
state_dir: $dir/node-$n
plugins:
  dir: $build/plugins
  config_dir: $dir/plugins.d
ws:
  listen: 127.0.0.1:${ws_port[n]}
store:
  backend: redis
  redis:
    address: 127.0.0.1:$redis_port
    key_prefix: "demo:"
cluster:
  redis:
    address: 127.0.0.1:$redis_port
    key_prefix: "demo:"
  node_id: node-$n
  region: demo
EOF
  "$build/prismd" --config "$dir/node-$n.yaml" 2>"$dir/node-$n.log" &
  pids+=($!)
done

# Each node's ports as it logged them (event=listening comes last at start).
for n in 1 2 3; do
  for _ in $(seq 100); do
    grep -q "event=listening" "$dir/node-$n.log" && break
    sleep 0.1
  done
  udp_port[n]=$(sed -n 's/.*event=listening udp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/node-$n.log")
  ws_port[n]=$(sed -n 's/.*event=ws_listening http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/node-$n.log")
  [[ -n ${udp_port[n]} ]] || { echo "cluster-demo: node-$n did not start:" >&2; tail -n 20 "$dir/node-$n.log" >&2; exit 1; }
done
ctl() {
  local n=$1
  shift
  "$build/prismctl" --server "127.0.0.1:${udp_port[n]}" --config "$dir/node-$n.yaml" "$@"
}
# Each node has joined once every node lists all three (the others' heartbeats read).
listed=""
for _ in $(seq 100); do
  listed=""
  for n in 1 2 3; do
    count=$(ctl "$n" --json cluster nodes 2>/dev/null | grep -o '"id":"node-[0-9]"' | wc -l || true)
    [[ $count == 3 ]] && listed+=$n
  done
  [[ $listed == 123 ]] && break
  sleep 0.1
done
if [[ $listed != 123 ]]; then
  echo "cluster-demo: the nodes did not all list each other; their logs end with:" >&2
  tail -n 5 "$dir"/node-*.log >&2
  exit 1
fi
ctl 1 cluster nodes
# The rooms demo's instance (examples/rooms-web), made on node 1, which serves it; the
# other nodes forward its sockets there (docs/rooms.md "In a cluster").
ctl 1 rooms create "$(cat "$(dirname "$0")/../examples/rooms-web/demo.json")" >/dev/null

if [[ $check == --check ]]; then
  # Asked on node 3, answered by node 1.
  if ! ctl 3 rooms show demo | grep -q "Rooms web demo"; then
    echo "cluster-demo: node-3 cannot show the instance node-1 serves:" >&2
    ctl 3 rooms show demo >&2 || true
    exit 1
  fi
  echo "cluster-demo: node-3 shows the rooms instance node-1 serves"
  ctl 3 subscribe demo --count 1 >"$dir/subscriber.out" 2>&1 &
  subscriber=$!
  for _ in $(seq 100); do
    [[ $(redis-cli -p "$redis_port" pubsub numsub demo:topic:demo | tail -n 1) == 1 ]] && break
    sleep 0.1
  done
  ctl 1 publish demo "hello from node-1"
  if ! wait "$subscriber" || ! grep -q "demo hello from node-1" "$dir/subscriber.out"; then
    echo "cluster-demo: node-3's subscriber did not hear node-1's publish:" >&2
    cat "$dir/subscriber.out" >&2
    exit 1
  fi
  echo "cluster-demo: a publish on node-1 reached a subscriber on node-3"
  exit 0
fi

echo "cluster-demo: redis 127.0.0.1:$redis_port; nodes UDP 127.0.0.1:${udp_port[1]}-${udp_port[3]}, WebSocket ${ws_port[1]}-${ws_port[3]}; logs in $dir."
echo "cluster-demo: the rooms demo's pages (examples/rooms-web/README.md) join instance 'demo' through any node, e.g. ?server=ws://127.0.0.1:${ws_port[2]} and ?server=ws://127.0.0.1:${ws_port[3]}. Ctrl-C stops them."
wait
