#!/usr/bin/env bash
# The storage rows of `make bench`: the practice service's match recordings/s and
# leaderboard top-10 reads/s through the full path (libprism-client session → prismd
# 1 worker → practice plugin → storage facade), with the embedded SQLite store and with
# Redis, each beside redis-benchmark's ZADD and ZREVRANGE against the same redis-server
# in the same run. Prints one line per run and then the ratios:
#   (e) practice record_match on sqlite and on redis vs redis-benchmark ZADD
#   (f) practice leaderboard_top (10) on sqlite and on redis vs redis-benchmark ZREVRANGE 0 9
# redis-server runs with appendonly yes, appendfsync always (an OK reply is durable, as
# prismd promises), for prismd and redis-benchmark alike.
#
# usage: tests/bench/run_store_bench.sh BUILD_DIR
# env:   DURATION (seconds measured, default 5), WARMUP (0.5), CLIENTS (4), INFLIGHT (16),
#        PLAYERS (1000), REDIS_CLIENTS (50, redis-benchmark -c), SMOKE=1 (short, for make test)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_settings run_store_bench "${1:-}"
players=${PLAYERS:-1000}
redis_requests=200000
if [[ ${SMOKE:-0} == 1 ]]; then
  players=400
  redis_requests=2000
fi
for bin in prismd prism-bench plugins/practice.so; do
  if [[ ! -e $build/$bin ]]; then
    echo "run_store_bench: $build/$bin is missing (build first)" >&2
    exit 1
  fi
done
for tool in redis-server redis-cli redis-benchmark; do
  if ! command -v "$tool" >/dev/null; then
    echo "run_store_bench: $tool is not installed (scripts/setup.sh installs redis-server)" >&2
    exit 1
  fi
done


# A throwaway redis-server on a free loopback port, in $tmp; every write fsync'd.
start_redis --appendonly yes --appendfsync always

# Only the practice plugin: the bench measures it, nothing else loads.
mkdir -p "$tmp/plugins"
cp "$build/plugins/practice.so" "$tmp/plugins/"

# start_prismd NAME STORE_YAML: prismd with 1 worker and the given `store` section.
start_prismd() {
  cat >"$tmp/$1.yaml" <<YAML
server:
  udp: 127.0.0.1:0
  workers: 1
plugins:
  config_dir: $tmp/plugins.d
log:
  level: info
$2
YAML
  start_server "$1" "$build/prismd" --config "$tmp/$1.yaml" --plugins-dir "$tmp/plugins" \
    --state-dir "$tmp/$1-state"
}

run_practice() {  # LABEL PORT STATE_DIR WORKLOAD
  bench "$1" --server "127.0.0.1:$2" --server-key "$3/server.pub" --workload "$4" \
    --players "$players" --clients "${CLIENTS:-4}" --inflight "${INFLIGHT:-16}" \
    --duration "$duration" --warmup "$warmup"
}

start_prismd prismd-sqlite "store:
  backend: sqlite"
sqlite_port=$port
run_practice sqlite-record "$sqlite_port" "$tmp/prismd-sqlite-state" practice-record
sqlite_record=$result
run_practice sqlite-top10 "$sqlite_port" "$tmp/prismd-sqlite-state" practice-top10
sqlite_top=$result

start_prismd prismd-redis "store:
  backend: redis
  redis:
    address: \"127.0.0.1:$redis_port\"
    key_prefix: \"bench:\""
redis_prism_port=$port
# Each redis row waits for the AOF rewrite the rows before it may have started.
await_redis_quiet
run_practice redis-record "$redis_prism_port" "$tmp/prismd-redis-state" practice-record
redis_record=$result
await_redis_quiet
run_practice redis-top10 "$redis_prism_port" "$tmp/prismd-redis-state" practice-top10
redis_top=$result

# redis-benchmark: its rps from --csv ("test","rps",...).
redis_bench() {  # LABEL COMMAND...
  local label=$1 line rps
  shift
  await_redis_quiet
  line=$(redis-benchmark -p "$redis_port" -c "${REDIS_CLIENTS:-50}" -n "$redis_requests" -r 100000 \
    --csv "$@" | tail -n 1)
  rps=$(awk -F'","' '{ print $2 }' <<<"$line")
  if [[ -z $rps ]] || [[ $rps == 0* ]]; then
    echo "run_store_bench: redis-benchmark $label failed: $line" >&2
    exit 1
  fi
  echo "label=$label mode=redis-benchmark rps=$rps"
  result=$rps
}
redis_bench redis-zadd ZADD rawbench:board __rand_int__ member:__rand_int__
zadd=$result
redis_bench redis-zrevrange ZREVRANGE rawbench:board 0 9 WITHSCORES
zrevrange=$result

echo
awk -v sr="$(field "$sqlite_record" rps)" -v rr="$(field "$redis_record" rps)" \
    -v st="$(field "$sqlite_top" rps)" -v rt="$(field "$redis_top" rps)" \
    -v srp="$(field "$sqlite_record" p99_us)" -v rrp="$(field "$redis_record" p99_us)" \
    -v stp="$(field "$sqlite_top" p99_us)" -v rtp="$(field "$redis_top" p99_us)" \
    -v zadd="$zadd" -v zrev="$zrevrange" '
  BEGIN {
    printf "(e) record_match:   sqlite rps=%.0f p99_us=%.0f ratio_to_zadd=%.3f | redis rps=%.0f p99_us=%.0f ratio_to_zadd=%.3f | redis-benchmark ZADD rps=%.0f\n",
           sr, srp, sr / zadd, rr, rrp, rr / zadd, zadd
    printf "(f) top-10 reads:   sqlite rps=%.0f p99_us=%.0f ratio_to_zrevrange=%.3f | redis rps=%.0f p99_us=%.0f ratio_to_zrevrange=%.3f | redis-benchmark ZREVRANGE rps=%.0f\n",
           st, stp, st / zrev, rt, rtp, rt / zrev, zrev
  }'
