#!/usr/bin/env bash
# The WebSocket rows of `make bench`: ws_bench against prismd's Phoenix gateway (1 worker,
# the default plugin's echo:* channels) and against lws_echo_baseline (libwebsockets
# alone: one thread, every text message sent back), in one run, and prints:
#   (g) peak messages/s and p99, closed loop: the baseline's raw echo beside prismd's
#       `echo` events on joined channels (phx_reply), and their ratio
#   (h) p99 of both at half of the lower of the two peaks (open loop), and their ratio
#   (i) sessions/s: connect, upgrade, phx_join, close (prismd) beside connect, upgrade,
#       one echo, close (baseline)
#   (j) fan-out: `shout` delivered to S sockets on one topic, deliveries/s for each S
# and the rooms rows, from a second prismd with only the rooms plugin (docs/rooms.md) on
# its default sqlite storage, beside the gateway rows they are built on:
#   (k) joins/s: connect, upgrade, join an instance's `chat` channel, close, beside (i)
#   (l) a room of S members: one of them keeps `push`es in flight on `chat`; each is
#       stored (group commit), acknowledged and delivered to the S-1 others as `msg`:
#       deliveries/s and pushes/s beside the gateway's fan-out to S sockets (j)
#   (m) memory per connected member, for the gateway's sockets (j) and a room's members
#       (l) at the largest S: prismd's heap in use (prism_heap_inuse_bytes) once its load
#       is drained, less before they connected, divided by S; and its RSS growth at the
#       end of setup, which keeps the peak of what setup had queued (a room's presence as
#       it fills: O(S²) bytes) since the allocator holds freed pages. Each is the first
#       large run of a fresh process. Beside them, what an idle UDP session costs: IDLE_SESSIONS
#       (2000) libprism-client sessions, each confirmed by a PING, then left idle past
#       the channel's rest_after (1 s: docs/performance.md, "Memory per session"), over prismd's heap in use before
#       they connected; the performance issue's target is 4 KiB
# Every line also carries server_cpu (the server's CPU time over the run's wall time) and
# client_cpu (ws_bench's own): both share the machine's cores.
# Exits non-zero if any run fails, is refused, completes nothing or gets an error reply.
#
# usage: tests/bench/run_ws_bench.sh BUILD_DIR
# env:   DURATION (seconds measured, default 5), WARMUP (0.5), CONNECTIONS (4), INFLIGHT (16),
#        SESSION_CONNECTIONS (4, sessions opened at once in (i)), SUBSCRIBERS ("10 100 1000"),
#        PUBLISHERS (1), FANOUT_INFLIGHT (16 shouts per publisher),
#        IDLE_SESSIONS (2000), SMOKE=1 (0.5 s each, S = 10 and 100, 200 idle sessions, for
#        `make test`); S runs from the largest down
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_settings run_ws_bench "${1:-}"
subscribers=${SUBSCRIBERS:-10 100 1000}
idle_sessions=${IDLE_SESSIONS:-2000}
if [[ ${SMOKE:-0} == 1 ]]; then
  subscribers="10 100"
  idle_sessions=200
fi
# Largest first: (m) is read on the first run that opens many sockets.
subscribers=$(tr ' ' '\n' <<<"$subscribers" | sort -rn | tr '\n' ' ')
load=(--connections "${CONNECTIONS:-4}" --inflight "${INFLIGHT:-16}" --duration "$duration"
      --warmup "$warmup")
workers=1

for bin in prismd prismctl prism-bench ws_bench lws_echo_baseline plugins/default.so plugins/rooms.so; do
  if [[ ! -e $build/$bin ]]; then
    echo "run_ws_bench: $build/$bin is missing (build first, with PRISM_WITH_WS=ON)" >&2
    exit 1
  fi
done


# Fan-out to 1000 sockets and the sessions of (i) need descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
declare -A pid_of

# start_prismd NAME PLUGIN: a prismd of its own ($tmp/NAME.yaml, $tmp/NAME-state) loading
# only plugins/PLUGIN.so, so nothing else loads or logs. Sets pid_of[NAME], $udp_port and
# $ws_port. The per-socket message rate and the connection limits are raised far past the
# load: the bench measures the gateway, not its limits (docs/operations.md, ws.*).
start_prismd() {
  local name=$1 plugin=$2
  mkdir -p "$tmp/$name-plugins"
  cp "$build/plugins/$plugin.so" "$tmp/$name-plugins/"
  cat >"$tmp/$name.yaml" <<EOF
$(bench_server "$workers")
state_dir: $tmp/$name-state
ws:
  listen: 127.0.0.1:0
  messages_per_second: 1000000
  max_connections: 1000000
  max_connections_per_ip: 1000000
log:
  level: info
EOF
  # prismd logs event=ws_listening before event=listening (the UDP socket, last at start).
  start_server "$name" "$build/prismd" --config "$tmp/$name.yaml" --plugins-dir "$tmp/$name-plugins"
  pid_of[$name]=${servers[-1]}
  udp_port=$port
  ws_port=$(sed -n 's/.*event=ws_listening http=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/$name.log" | head -n 1)
  if [[ -z $ws_port ]]; then
    echo "run_ws_bench: $name logged no event=ws_listening; its log ends with:" >&2
    tail -n 20 "$tmp/$name.log" >&2
    exit 1
  fi
}

start_prismd prismd default
prism_port=$ws_port

# heap_inuse PORT: prismd's prism_heap_inuse_bytes (docs/operations.md) from GET /metrics.
heap_inuse() {
  local fd bytes
  exec {fd}<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&"$fd"
  bytes=$(sed -n 's/^prism_heap_inuse_bytes \([0-9][0-9]*\).*/\1/p' <&"$fd")
  exec {fd}<&-
  if [[ -z $bytes ]]; then
    echo "run_ws_bench: prismd's /metrics has no prism_heap_inuse_bytes" >&2
    exit 1
  fi
  echo "$bytes"
}

# (m) for UDP: idle sessions, first, on the fresh process.
heap_before=$(heap_inuse "$prism_port")
coproc HOLD { exec "$build/prism-bench" --hold --clients "$idle_sessions" --label idle-udp \
  --server "127.0.0.1:$udp_port" --server-key "$tmp/prismd-state/server.pub"; }
hold_pid=$HOLD_PID
if ! read -r -t 120 held <&"${HOLD[0]}" || [[ $held != *"mode=hold"* ]]; then
  echo "run_ws_bench: prism-bench --hold did not open $idle_sessions sessions" >&2
  exit 1
fi
sleep 2  # the sessions idle past rest_after (1 s): at rest, as an idle session is
heap_idle=$(heap_inuse "$prism_port")
eval "exec ${HOLD[1]}>&-"  # end of input: prism-bench closes the sessions
wait "$hold_pid"
idle_session_bytes=$(( (heap_idle - heap_before) / idle_sessions ))
echo "label=idle-udp sessions=$idle_sessions heap_per_session_bytes=$idle_session_bytes"
start_listener baseline 'event=listening ws=127\.0\.0\.1:([0-9]+)' \
  "$build/lws_echo_baseline" --host 127.0.0.1 --port 0
pid_of[baseline]=${servers[-1]}
baseline_port=$port

clock_ticks=$(getconf CLK_TCK)
# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks (proc(5) stat);
# 0 once it is gone (the run then fails on its own).
cpu_ticks() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  stat=${stat##*) }
  awk '{ print $12 + $13 }' <<<"$stat"
}

# ws_run LABEL SERVER OPTIONS...: runs ws_bench with OPTIONS against SERVER (prismd or
# baseline), adds server_cpu (the server's CPU seconds per wall second of the run) to its
# line, prints it and sets $result to it. Fails the script, with the end of the server's
# log, when ws_bench fails (it exits 1 on an error reply, a refused or closed connection,
# a timeout, or nothing completed).
ws_run() {
  local label=$1 server=$2 rc=0 ticks_before ticks_after started
  shift 2
  ticks_before=$(cpu_ticks "${pid_of[$server]}")
  started=$EPOCHREALTIME
  result=$("$build/ws_bench" --label "$label" "$@") || rc=$?
  ticks_after=$(cpu_ticks "${pid_of[$server]}")
  result+=$(awk -v t="$((ticks_after - ticks_before))" -v hz="$clock_ticks" \
    -v wall="$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" \
    'BEGIN { printf " server_cpu=%.2f", (wall > 0 && t > 0 ? t / hz / wall : 0) }')
  echo "$result"
  if ((rc != 0)) || [[ -z $(field "$result" errors) ]] || (($(field "$result" errors) > 0)); then
    echo "run_ws_bench: the $label run failed (ws_bench exit status $rc); $server's log ends with:" >&2
    tail -n 20 "$tmp/$server.log" >&2
    exit 1
  fi
}

baseline_target=(--server "127.0.0.1:$baseline_port")
prism_target=(--server "127.0.0.1:$prism_port")

ws_run baseline-echo baseline --mode echo "${baseline_target[@]}" "${load[@]}"
baseline=$result
ws_run prismd-echo prismd --mode phoenix "${prism_target[@]}" "${load[@]}"
prismd=$result

# Half of the lower peak: above its own peak a server's p99 is only its queue growing.
read -r half half_of < <(awk -v p="$(field "$prismd" rps)" -v b="$(field "$baseline" rps)" \
  'BEGIN { if (p <= b) printf "%d prismd\n", p / 2; else printf "%d baseline\n", b / 2 }')
ws_run baseline-echo-half baseline --mode echo "${baseline_target[@]}" "${load[@]}" --rate "$half"
baseline_half=$result
ws_run prismd-echo-half prismd --mode phoenix "${prism_target[@]}" "${load[@]}" --rate "$half"
prismd_half=$result

sessions=(--connections "${SESSION_CONNECTIONS:-4}" --duration "$duration" --warmup "$warmup")
ws_run baseline-sessions baseline --mode echo-connect "${baseline_target[@]}" "${sessions[@]}"
baseline_sessions=$result
ws_run prismd-joins prismd --mode phoenix-join "${prism_target[@]}" "${sessions[@]}"
prismd_joins=$result

fanout=(--publishers "${PUBLISHERS:-1}" --inflight "${FANOUT_INFLIGHT:-16}" --duration "$duration"
        --warmup "$warmup")
fanout_rows=()
rss=(--rss-pid "${pid_of[prismd]}" --server-heap)
for s in $subscribers; do
  ws_run "prismd-fanout-$s" prismd --mode fanout "${prism_target[@]}" --subscribers "$s" \
    "${fanout[@]}" "${rss[@]}"
  fanout_rows+=("$result")
  rss=()
done

# The rooms rows: a fresh prismd with the rooms plugin, instances made through prismctl
# (the admin login) with limits past the load: max_users and the per-user push rate.
start_prismd rooms rooms
rooms_target=(--server "127.0.0.1:$ws_port")
create_instance() {
  if ! "$build/prismctl" --server "127.0.0.1:$udp_port" --config "$tmp/rooms.yaml" rooms create \
      "{\"id\":\"$1\",\"type\":\"bench\",\"channels\":[{\"name\":\"chat\",\"type\":\"accumulative\"}],
        \"limits\":{\"max_users\":1000000,\"messages_per_second\":100000}}" >/dev/null; then
    echo "run_ws_bench: prismctl rooms create $1 failed; the rooms log ends with:" >&2
    tail -n 20 "$tmp/rooms.log" >&2
    exit 1
  fi
}
rooms_rows=()
rss=(--rss-pid "${pid_of[rooms]}" --server-heap)
for s in $subscribers; do
  create_instance "bench-$s"
  ws_run "rooms-fanout-$s" rooms --mode rooms-fanout "${rooms_target[@]}" --instance "bench-$s" \
    --subscribers "$s" "${fanout[@]}" "${rss[@]}"
  rooms_rows+=("$result")
  rss=()
done
create_instance bench-joins
ws_run rooms-joins rooms --mode rooms-join "${rooms_target[@]}" --instance bench-joins \
  "${sessions[@]}"
rooms_joins=$result

echo
echo "WebSocket gateway: prismd ($workers worker) beside lws_echo_baseline (libwebsockets, 1 thread)"
awk -v br="$(field "$baseline" rps)" -v bp="$(field "$baseline" p99_us)" \
    -v bc="$(field "$baseline" server_cpu)" \
    -v pr="$(field "$prismd" rps)" -v pp="$(field "$prismd" p99_us)" \
    -v pc="$(field "$prismd" server_cpu)" \
    -v bcc="$(field "$baseline" client_cpu)" -v pcc="$(field "$prismd" client_cpu)" \
    -v half="$half" -v half_of="$half_of" \
    -v hbp="$(field "$baseline_half" p99_us)" -v hpp="$(field "$prismd_half" p99_us)" \
    -v hb50="$(field "$baseline_half" p50_us)" -v hp50="$(field "$prismd_half" p50_us)" \
    -v bs="$(field "$baseline_sessions" sessions_per_s)" -v ps="$(field "$prismd_joins" sessions_per_s)" \
    -v bsp="$(field "$baseline_sessions" p99_us)" -v psp="$(field "$prismd_joins" p99_us)" \
    -v jp="$(field "$prismd_joins" join_p99_us)" '
  function ratio(a, b) { return b > 0 ? a / b : 0 }
  BEGIN {
    printf "%-46s %14s %14s %8s\n", "row", "baseline", "prismd", "ratio"
    printf "%-46s %14.0f %14.0f %8.3f\n", "(g) messages/s, closed loop", br, pr, ratio(pr, br)
    printf "%-46s %14.1f %14.1f %8.2f\n", "    p99 us at that load", bp, pp, ratio(pp, bp)
    printf "%-46s %14.2f %14.2f\n", "    server CPU (cores)", bc, pc
    printf "%-46s %14.2f %14.2f\n", "    ws_bench CPU (cores)", bcc, pcc
    printf "%-46s %14.1f %14.1f %8.2f\n", sprintf("(h) p99 us at %d msg/s (half %s peak)", half, half_of),
           hbp, hpp, ratio(hpp, hbp)
    printf "%-46s %14.1f %14.1f %8.2f\n", "    p50 us at that rate", hb50, hp50, ratio(hp50, hb50)
    printf "%-46s %14.0f %14.0f %8.3f\n", "(i) sessions/s (connect+upgrade+1st reply)", bs, ps, ratio(ps, bs)
    printf "%-46s %14.1f %14.1f %8.2f\n", "    p99 us per session", bsp, psp, ratio(psp, bsp)
    printf "%-46s %14s %14.1f\n", "    join round trip p99 us", "", jp
  }'
for row in "${fanout_rows[@]}"; do
  awk -v s="$(field "$row" connections)" -v d="$(field "$row" deliveries_per_s)" \
      -v sh="$(field "$row" shouts_per_s)" -v p50="$(field "$row" p50_us)" \
      -v p99="$(field "$row" p99_us)" -v c="$(field "$row" server_cpu)" '
    BEGIN {
      printf "(j) fan-out to %5d sockets: deliveries/s=%.0f shouts/s=%.0f delivery p50_us=%.1f p99_us=%.1f server_cpu=%.2f\n",
             s, d, sh, p50, p99, c
    }'
done

echo
echo "Rooms: a room's members (rooms plugin, sqlite, $workers worker) beside the gateway rows above"
printf "%-46s %14s %14s %8s\n" "row" "gateway" "rooms" "ratio"
awk -v g="$(field "$prismd_joins" sessions_per_s)" -v r="$(field "$rooms_joins" sessions_per_s)" \
    -v gp="$(field "$prismd_joins" join_p99_us)" -v rp="$(field "$rooms_joins" join_p99_us)" '
  function ratio(a, b) { return b > 0 ? a / b : 0 }
  BEGIN {
    printf "%-46s %14.0f %14.0f %8.3f\n", "(k) joins/s (connect+upgrade+join+close)", g, r, ratio(r, g)
    printf "%-46s %14.1f %14.1f %8.2f\n", "    join round trip p99 us", gp, rp, ratio(rp, gp)
  }'
for i in "${!rooms_rows[@]}"; do
  row=${rooms_rows[$i]} base=${fanout_rows[$i]}
  awk -v s="$(field "$row" connections)" \
      -v gd="$(field "$base" deliveries_per_s)" -v rd="$(field "$row" deliveries_per_s)" \
      -v gs="$(field "$base" shouts_per_s)" -v rs="$(field "$row" shouts_per_s)" \
      -v gp="$(field "$base" p99_us)" -v rp="$(field "$row" p99_us)" \
      -v gc="$(field "$base" server_cpu)" -v rc="$(field "$row" server_cpu)" '
    function ratio(a, b) { return b > 0 ? a / b : 0 }
    BEGIN {
      printf "%-46s %14.0f %14.0f %8.3f\n", sprintf("(l) room of %d: deliveries/s", s), gd, rd, ratio(rd, gd)
      printf "%-46s %14.0f %14.0f %8.3f\n", "    messages (shouts, pushes) delivered /s", gs, rs, ratio(rs, gs)
      printf "%-46s %14.1f %14.1f %8.2f\n", "    delivery p99 us", gp, rp, ratio(rp, gp)
      printf "%-46s %14.2f %14.2f\n", "    server CPU (cores)", gc, rc
    }'
done
awk -v s="$(field "${fanout_rows[0]}" connections)" \
    -v gh="$(field "${fanout_rows[0]}" heap_per_connection_bytes)" \
    -v rh="$(field "${rooms_rows[0]}" heap_per_connection_bytes)" \
    -v gr="$(field "${fanout_rows[0]}" rss_per_connection_bytes)" \
    -v rr="$(field "${rooms_rows[0]}" rss_per_connection_bytes)" \
    -v n="$idle_sessions" -v ub="$idle_session_bytes" '
  BEGIN {
    printf "%-46s %14.0f %14.0f %8.2f\n", sprintf("(m) heap in use per member, %d joined (bytes)", s), gh, rh,
           (gh > 0 ? rh / gh : 0)
    printf "%-46s %14.0f %14.0f %8.2f\n", "    RSS growth per member (bytes)", gr, rr, (gr > 0 ? rr / gr : 0)
    printf "%-46s %14.0f (target <= 4096)\n", sprintf("    heap in use per idle UDP session, %d (bytes)", n), ub
  }'
