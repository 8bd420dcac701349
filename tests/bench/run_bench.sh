#!/usr/bin/env bash
# What `make bench` runs: prism-bench against prismd (1 worker) and against
# udp_echo_baseline (1 thread: the kernel's UDP path and nothing else), with the same
# options, then the ratio of the two. Exits non-zero if either run completed nothing.
#
# usage: tests/bench/run_bench.sh BUILD_DIR
# env:   DURATION (seconds measured, default 5), WARMUP (0.5), CLIENTS (4), INFLIGHT (16),
#        THREADS (prism-bench threads, 1), SMOKE=1 (0.5 s each, for `make test`)
set -euo pipefail

build=${1:?usage: run_bench.sh BUILD_DIR}
if [[ ! -d $build ]]; then
  echo "run_bench: build directory '$build' does not exist" >&2
  exit 1
fi
build=$(cd "$build" && pwd)
duration=${DURATION:-5}
warmup=${WARMUP:-0.5}
if [[ ${SMOKE:-0} == 1 ]]; then
  duration=0.5
  warmup=0.1
fi
bench_options=(--clients "${CLIENTS:-4}" --inflight "${INFLIGHT:-16}" --threads "${THREADS:-1}"
               --duration "$duration" --warmup "$warmup")

for bin in prismd prism-bench udp_echo_baseline; do
  if [[ ! -x $build/$bin ]]; then
    echo "run_bench: $build/$bin is missing (build first)" >&2
    exit 1
  fi
done

tmp=$(mktemp -d -t prism-bench.XXXXXX)
servers=()
# Stops the servers (SIGTERM, then SIGKILL after 5 s) and removes the temp directory.
cleanup() {
  local pid i
  for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# running PID: whether PID is alive. A server that exited stays a zombie until this
# shell reaps it, and kill -0 (tail --pid too) still sees a zombie.
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# start_server NAME COMMAND...: runs COMMAND in $tmp with stderr to $tmp/NAME.log and
# waits, by following that log, for "event=listening udp=127.0.0.1:PORT". Sets $port.
start_server() {
  local name=$1 log=$tmp/$1.log line partial="" tail_fd tail_pid rc
  shift
  : >"$log"
  (cd "$tmp" && exec "$@") 2>"$log" &
  local pid=$!
  servers+=("$pid")
  exec {tail_fd}< <(exec tail -n +1 -f -s 0.1 --pid="$pid" "$log")
  tail_pid=$!
  port=""
  local deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    # The short read timeout is only there to notice a server that died silently.
    if IFS= read -r -t 0.2 line <&"$tail_fd"; then
      line=$partial$line
      partial=""
      if [[ $line =~ event=listening\ udp=127\.0\.0\.1:([0-9]+) ]]; then
        port=${BASH_REMATCH[1]}
        break
      fi
    else
      rc=$?
      ((rc > 128)) || break  # end of the log: the server is gone
      partial+=$line         # a timed-out read keeps what it got of the line
      running "$pid" || break
    fi
  done
  kill "$tail_pid" 2>/dev/null || true
  exec {tail_fd}<&-
  if [[ -z $port ]]; then
    echo "run_bench: $name did not report event=listening; its log ends with:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
}

# field LINE KEY: the value of KEY=VALUE in a prism-bench result line.
field() {
  awk -v key="$2" '{ for (i = 1; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == key) print substr($i, n + 1) } }' <<<"$1"
}

# bench LABEL PORT: runs prism-bench, prints its line, and sets $result to it.
bench() {
  local label=$1 port=$2 rc=0
  result=$("$build/prism-bench" --server "127.0.0.1:$port" --label "$label" "${bench_options[@]}") || rc=$?
  if [[ -n $result ]]; then echo "$result"; fi
  local requests errors
  requests=$(field "$result" requests)
  errors=$(field "$result" errors)
  if ((rc != 0)) || [[ -z $requests ]] || ((requests == 0)); then
    echo "run_bench: the $label run completed no requests" >&2
    exit 1
  fi
  if ((errors == requests)); then
    echo "run_bench: every $label reply had a non-OK status (is packet id 101, default.echo, loaded?)" >&2
    exit 1
  fi
}

# log.level info, not warn: prismd reports event=listening at info. Nothing on the
# request path logs at info, so this costs the measurement nothing.
cat >"$tmp/prism.yaml" <<'EOF'
server:
  udp: 127.0.0.1:0
  workers: 1
log:
  level: info
EOF

start_server prismd "$build/prismd" --config "$tmp/prism.yaml" --plugins-dir "$build/plugins" \
  --state-dir "$tmp/state"
prism_port=$port
start_server baseline "$build/udp_echo_baseline" --host 127.0.0.1 --port 0 --threads 1
baseline_port=$port

bench prism "$prism_port"
prism=$result
bench baseline "$baseline_port"
baseline=$result

awk -v pr="$(field "$prism" rps)" -v br="$(field "$baseline" rps)" \
    -v pp="$(field "$prism" p99_us)" -v bp="$(field "$baseline" p99_us)" \
    'BEGIN { printf "ratio throughput=%.3f p99=%.3f\n", pr / br, (bp > 0 ? pp / bp : 0) }'
