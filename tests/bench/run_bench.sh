#!/usr/bin/env bash
# What `make bench` runs: prism-bench against prismd (1 worker, the secure transport with
# libprism-client sessions) and against udp_echo_baseline (1 thread: the kernel's UDP path
# and nothing else), with the same load, and prints:
#   (a) the baseline's peak requests/s and p99 (closed loop)
#   (b) prismd's peak requests/s and p99 over sessions, and its ratio to (a)
#   (c) p99 of both at half of the lower of the two peaks (open loop), and their ratio
#   (d) handshakes/s against the one worker (sessions opened and closed)
#   (e) the per-datagram shapes of issue 15, 100-byte payloads, one client thread each:
#       64 sockets x 1 in flight and 16 x 8, against the raw echo, ENet's reliable echo
#       (enet_echo; the row is skipped when the build has no ENet) and prismd, with the
#       ratios Prism/raw and Prism/ENet: medians over ROUNDS rounds (default 3)
#   (f) scaling: the 16 x 8 load (THREADS client threads) against prismd with each of
#       SCALE_WORKERS (default "1 2") workers, and each one's ratio to the first
# Exits non-zero if any run fails, completes nothing or gets an error reply.
#
# usage: tests/bench/run_bench.sh BUILD_DIR
# env:   DURATION (seconds measured, default 5), WARMUP (0.5), CLIENTS (4), INFLIGHT (16),
#        THREADS (prism-bench threads, 1), DELIVERY (ordered), HANDSHAKE_CLIENTS (4),
#        ROUNDS (rounds of (e), 3), SMOKE=1 (0.5 s each and one round, for `make test`)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_settings run_bench "${1:-}"
bench_options=(--clients "${CLIENTS:-4}" --inflight "${INFLIGHT:-16}" --threads "${THREADS:-1}"
               --duration "$duration" --warmup "$warmup")
workers=1

for bin in prismd prism-bench udp_echo_baseline; do
  if [[ ! -x $build/$bin ]]; then
    echo "run_bench: $build/$bin is missing (build first)" >&2
    exit 1
  fi
done

start_bench_prismd prismd "$workers"
prismd_pid=${servers[-1]}
prism_port=$port
# prismd writes its key pair before it listens.
server_key=$tmp/prismd-state/server.pub
if [[ ! -s $server_key ]]; then
  echo "run_bench: prismd is listening but wrote no $server_key" >&2
  exit 1
fi
start_server baseline "$build/udp_echo_baseline" --host 127.0.0.1 --port 0 --threads 1
baseline_port=$port

baseline_run=(--baseline --server "127.0.0.1:$baseline_port" "${bench_options[@]}")
secure_run=(--server "127.0.0.1:$prism_port" --server-key "$server_key"
            --delivery "${DELIVERY:-ordered}" "${bench_options[@]}")

bench baseline "${baseline_run[@]}"
baseline=$result
bench secure "${secure_run[@]}"
secure=$result

# Half of the lower peak: above its own peak a server's p99 is only its queue growing.
read -r half half_of < <(awk -v s="$(field "$secure" rps)" -v b="$(field "$baseline" rps)" \
  'BEGIN { if (s <= b) printf "%d secure\n", s / 2; else printf "%d baseline\n", b / 2 }')
bench baseline-half "${baseline_run[@]}" --rate "$half"
baseline_half=$result
bench secure-half "${secure_run[@]}" --rate "$half"
secure_half=$result

# (e): each shape against the three servers, back to back.
enet_port=""
if [[ -x $build/enet_echo ]]; then
  start_server enet "$build/enet_echo" --server --host 127.0.0.1 --port 0
  enet_port=$port
else
  echo "run_bench: $build/enet_echo is missing (no libenet-dev at configure): no ENet row" >&2
fi
# On a shared VM one run's rate can be a third off the next one's, so each shape runs
# `rounds` times, the three servers back to back in each, and the ratios printed are the
# medians of each round's own ratios.
rounds=${ROUNDS:-3}
[[ ${SMOKE:-0} == 1 ]] && rounds=1
shape_rows=()
for shape in 64x1 16x8; do
  shape_options=(--clients "${shape%x*}" --inflight "${shape#*x}" --payload-size 100
                 --duration "$duration" --warmup "$warmup")
  for ((round = 1; round <= rounds; round++)); do
    bench "raw-$shape-$round" --baseline --server "127.0.0.1:$baseline_port" "${shape_options[@]}"
    raw_rps=$(field "$result" rps)
    enet_rps=0
    if [[ -n $enet_port ]]; then
      run_load "$build/enet_echo" "enet-$shape-$round" --client --server "127.0.0.1:$enet_port" \
        "${shape_options[@]}"
      enet_rps=$(field "$result" rps)
    fi
    bench "prism-$shape-$round" --server "127.0.0.1:$prism_port" --server-key "$server_key" \
      --delivery ordered "${shape_options[@]}"
    shape_rows+=("$shape $raw_rps $enet_rps $(field "$result" rps) $(field "$result" p99_us)")
  done
done

# (f): a prismd per worker count, one after another.
scale_rows=()
for n in ${SCALE_WORKERS:-1 2}; do
  start_bench_prismd "prismd-w$n" "$n"
  scaled_pid=${servers[-1]}
  bench "workers-$n" --server "127.0.0.1:$port" --server-key "$tmp/prismd-w$n-state/server.pub" \
    --clients 16 --inflight 8 --payload-size 100 --threads "${THREADS:-1}" \
    --duration "$duration" --warmup "$warmup"
  scale_rows+=("$n $(field "$result" rps)")
  kill -TERM "$scaled_pid"
  wait "$scaled_pid" 2>/dev/null || true
done

# thread_ticks PID: "TID TICKS" for each thread of PID (user + system clock ticks).
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    awk -v tid="${t##*/}" '{ sub(/^.*\) /, ""); print tid, $12 + $13 }' "$t/stat"
  done
}
# The worker is prismd's busiest thread during (d); its busy share says how many
# handshakes one worker would answer with a core to itself, since the clients' own X25519
# work shares this machine's cores.
ticks_before=$(thread_ticks "$prismd_pid")
wall_before=$(date +%s.%N)
bench handshakes --server "127.0.0.1:$prism_port" --server-key "$server_key" \
  --clients "${HANDSHAKE_CLIENTS:-4}" --handshakes "$duration" --warmup "$warmup"
handshakes=$result
worker_busy=$(awk -v before="$ticks_before" -v wall="$(awk -v a="$wall_before" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" \
  -v hz="$(getconf CLK_TCK)" '
  BEGIN { n = split(before, f, /[ \n]/); for (i = 1; i < n; i += 2) start[f[i]] = f[i + 1] }
  { d = $2 - start[$1]; if (d > most) most = d }
  END { printf "%.3f\n", most / hz / wall }' <<<"$(thread_ticks "$prismd_pid")")

echo
awk -v br="$(field "$baseline" rps)" -v bp="$(field "$baseline" p99_us)" \
    -v sr="$(field "$secure" rps)" -v sp="$(field "$secure" p99_us)" \
    -v half="$half" -v half_of="$half_of" \
    -v hbp="$(field "$baseline_half" p99_us)" -v hsp="$(field "$secure_half" p99_us)" \
    -v hs="$(field "$handshakes" handshakes_per_s)" -v workers="$workers" -v busy="$worker_busy" '
  function verdict(ok) { return ok ? "met" : "NOT met" }
  BEGIN {
    printf "(a) baseline echo: rps=%.0f p99_us=%.1f\n", br, bp
    ratio = br > 0 ? sr / br : 0
    printf "(b) secure echo:   rps=%.0f p99_us=%.1f throughput_ratio=%.3f (target >= 0.60: %s)\n",
           sr, sp, ratio, verdict(ratio >= 0.60)
    p99_ratio = hbp > 0 ? hsp / hbp : 0
    printf "(c) at %d req/s (half the %s peak): secure p99_us=%.1f baseline p99_us=%.1f p99_ratio=%.2f (target <= 3: %s)\n",
           half, half_of, hsp, hbp, p99_ratio, verdict(p99_ratio <= 3)
    capacity = busy > 0 ? hs / busy : 0
    printf "(d) handshakes:    per_s=%.0f workers=%d per_worker=%.0f worker_busy=%.2f per_worker_core=%.0f (target >= 12000: %s)\n",
           hs, workers, hs / workers, busy, capacity, verdict(capacity >= 12000)
  }'
# Targets (issue 15): 64x1 >= 0.6 of raw and >= 1.2x ENet; 16x8 >= 1.5x ENet. Rates are
# each server's median over the rounds; ratios the median of the rounds' own ratios.
printf '%s\n' "${shape_rows[@]}" | awk '
  function verdict(ok) { return ok ? "met" : "NOT met" }
  function median(list, n,    a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  !($1 in seen) { seen[$1] = 1; order[++shapes] = $1 }
  {
    raw[$1] = raw[$1] " " $2; enet[$1] = enet[$1] " " $3; prism[$1] = prism[$1] " " $4; p99[$1] = p99[$1] " " $5
    vs_raw[$1] = vs_raw[$1] " " ($2 > 0 ? $4 / $2 : 0)
    vs_enet[$1] = vs_enet[$1] " " ($3 > 0 ? $4 / $3 : 0)
  }
  END {
    for (k = 1; k <= shapes; k++) {
      shape = order[k]; e = median(enet[shape]); r = median(vs_raw[shape]); v = median(vs_enet[shape])
      line = sprintf("(e) %s, 100 B: raw=%.0f enet=%.0f prism=%.0f p99_us=%.1f prism/raw=%.2f prism/enet=%.2f",
                     shape, median(raw[shape]), e, median(prism[shape]), median(p99[shape]), r, v)
      if (e > 0) {
        n = split(vs_enet[shape], each, " ")
        listed = ""
        for (i = 1; i <= n; i++) listed = listed sprintf("%s%.2f", i > 1 ? "," : "", each[i])
        line = line " (rounds: " listed ")"
      }
      if (shape == "64x1") {
        line = line sprintf(" (targets >= 0.60 raw: %s", verdict(r >= 0.6))
        line = line (e > 0 ? sprintf(", >= 1.2 enet: %s)", verdict(v >= 1.2)) : ")")
      } else if (e > 0) {
        line = line sprintf(" (target >= 1.5 enet: %s)", verdict(v >= 1.5))
      }
      print line
    }
  }'
printf '%s\n' "${scale_rows[@]}" | awk -v cores="$(nproc)" '
  NR == 1 { first = $2 }
  { printf "(f) workers=%d (16x8, %d cores): rps=%.0f vs_first=%.2f\n", $1, cores, $2, (first > 0 ? $2 / first : 0) }'
