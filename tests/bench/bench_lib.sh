# Shared by the make bench scripts (run_bench.sh, run_impaired_bench.sh, run_store_bench.sh,
# run_ws_bench.sh, run_cluster_bench.sh): their common settings, a temp dir removed on exit,
# servers started and awaited on their listening line, prism-bench runs whose result lines
# are checked.

# bench_settings NAME BUILD_DIR: sets $build (absolute), $duration and $warmup (DURATION,
# default 5 s, and WARMUP, 0.5 s; 0.5 and 0.1 with SMOKE=1, for `make test`), or exits
# naming NAME when BUILD_DIR is missing.
bench_settings() {
  local name=$1
  build=${2:?usage: $name.sh BUILD_DIR}
  if [[ ! -d $build ]]; then
    echo "$name: build directory '$build' does not exist" >&2
    exit 1
  fi
  build=$(cd "$build" && pwd)
  duration=${DURATION:-5}
  warmup=${WARMUP:-0.5}
  if [[ ${SMOKE:-0} == 1 ]]; then
    duration=0.5
    warmup=0.1
  fi
}

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
  local name=$1
  shift
  : >"$tmp/$name.log"
  (cd "$tmp" && exec "$@") 2>"$tmp/$name.log" &
  await_listening "$name" "$!" 'event=listening udp=127\.0\.0\.1:([0-9]+)'
}

# bench_server WORKERS: the `server` section of a bench prismd's config. Every load of the
# bench comes from one address (127.0.0.1, or a proxy's): the per-source limits
# (docs/security.md) would otherwise cap the sessions and handshakes.
bench_server() {
  cat <<EOF
server:
  udp: 127.0.0.1:0
  workers: $1
  max_sessions_per_ip: 10000000
  max_handshakes_per_ip: 1000000
  handshake_rate_per_ip: 1000000
EOF
}

# start_bench_prismd NAME WORKERS: prismd with WORKERS workers and the build's plugins, its
# config in $tmp/NAME.yaml and its state (server.pub) in $tmp/NAME-state; sets $port.
# log.level info, not warn: prismd reports event=listening at info, and nothing on the
# request path logs at info, so this costs the measurement nothing.
start_bench_prismd() {
  local name=$1 workers=$2
  cat >"$tmp/$name.yaml" <<EOF
$(bench_server "$workers")
log:
  level: info
EOF
  start_server "$name" "$build/prismd" --config "$tmp/$name.yaml" --plugins-dir "$build/plugins" \
    --state-dir "$tmp/$name-state"
}

# start_listener NAME REGEX COMMAND...: the same with stdout and stderr both in
# $tmp/NAME.log, waiting for a line that matches REGEX (bash =~; its first group is the
# port). Sets $port.
start_listener() {
  local name=$1 regex=$2
  shift 2
  : >"$tmp/$name.log"
  (cd "$tmp" && exec "$@") >"$tmp/$name.log" 2>&1 &
  await_listening "$name" "$!" "$regex"
}

# await_listening NAME PID REGEX: adds PID to the servers stopped on exit and follows
# $tmp/NAME.log until a line matches REGEX; exits the script if none does within 15 s.
await_listening() {
  local name=$1 pid=$2 regex=$3 log=$tmp/$1.log line partial="" tail_fd tail_pid rc
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
      if [[ $line =~ $regex ]]; then
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

# bench LABEL OPTIONS...: runs prism-bench with OPTIONS, prints its line, and sets $result
# to it. Fails the script when prism-bench fails or its line shows nothing completed.
bench() {
  run_load "$build/prism-bench" "$@"
}

# run_load PROGRAM LABEL OPTIONS...: the same for any load with prism-bench's result line
# (enet_echo --client).
run_load() {
  local program=$1 label=$2 rc=0
  shift 2
  result=$("$program" "$@" --label "$label") || rc=$?
  if [[ -n $result ]]; then echo "$result"; fi
  local count
  count=$(field "$result" requests)
  [[ -n $count ]] || count=$(field "$result" handshakes)
  if ((rc != 0)) || [[ -z $count ]] || ((count == 0)); then
    echo "run_bench: the $label run failed ($(basename "$program") exit status $rc)" >&2
    exit 1
  fi
  if (($(field "$result" errors) > 0)); then
    echo "run_bench: the $label run got error replies (is the plugin it calls loaded?)" >&2
    exit 1
  fi
}


# start_redis [OPTION...]: a throwaway redis-server on a free loopback port, in $tmp/redis,
# with OPTIONs added (e.g. --appendonly yes); stopped on exit. Sets $redis_port. A port is
# picked below the kernel's ephemeral range (a client socket elsewhere may hold any port in
# it, and redis-server's bind then fails), and another process may still take it between
# the check and the bind: then redis-server exits and a new port is tried, as the C++
# harnesses do (tests/support/free_port.hpp). Only an answer carrying this server's pid
# counts, not another test's server on the same port.
start_redis() {
  local attempt try pid low
  low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  ((low > 11000)) || low=32768
  mkdir -p "$tmp/redis"
  for ((attempt = 0; attempt < 5; attempt++)); do
    redis_port=$((10000 + RANDOM % (low - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && continue  # something listens
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$tmp/redis" --save "" \
      --daemonize no --logfile "$tmp/redis.log" "$@" &
    pid=$!
    for ((try = 0; try < 100; try++)); do
      if [[ $(redis-cli -p "$redis_port" info server 2>/dev/null | tr -d '\r' | grep '^process_id:') == \
            "process_id:$pid" ]]; then
        servers+=("$pid")
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break  # it exited: the port was taken
      sleep 0.05
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "bench: redis-server did not start on any of 5 ports; its log:" >&2
  tail "$tmp/redis.log" >&2
  exit 1
}

# await_redis_quiet: returns once the redis-server of start_redis has no AOF rewrite
# running or scheduled. A rewrite starts when writes have doubled the AOF, and its fork
# would take one of the two cores from the next measurement. Polls: Redis announces no
# end of a rewrite to a client.
await_redis_quiet() {
  local info try
  for ((try = 0; try < 600; try++)); do
    info=$(redis-cli -p "$redis_port" info persistence)
    [[ $info == *aof_rewrite_in_progress:0* && $info == *aof_rewrite_scheduled:0* ]] && return
    sleep 0.1
  done
  echo "bench: redis-server was still rewriting its AOF after 60 s" >&2
  exit 1
}
