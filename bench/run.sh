#!/usr/bin/env bash
# Load benchmark of the whole rendezvous server against a minimal net/http
# baseline (bench/baseline), with wrk on loopback. See bench/README.md.
#
#   bench/run.sh          # full run: 8 runs of 3 s per row, about 7 minutes
#   bench/run.sh quick    # sanity run: 4 runs of 2 s per row, about 3 minutes
#
# Environment: DURATION (wrk -d, default 3s; 2s for quick), BLOCKS (blocks
# of four runs per row, 2; 1 for quick), THREADS (2), CONNS (64), KEYS
# (preloaded keys, 100000), ROWS (the scenarios to run, by letter, e.g.
# ROWS="a f" to look again at two rows with more blocks; all by default).
#
# It prints the machine and one markdown table, and writes both to
# bench/results/latest.md. Every process it starts is stopped on exit.
# Only 127.0.0.1 is ever contacted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

CLIENTS=10000   # distinct X-Forwarded-For addresses in scenario f

BENCH_NAME=bench
# shellcheck source=bench/lib.sh
source bench/lib.sh
wrk_options "$@"

command -v go >/dev/null || die "go is not on PATH (the module needs Go $(sed -n 's/^go //p' go.mod))"
need_tools

# scenario rows: label | lua script | ours instance | baseline instance | expect
# expect: ok = every answer 2xx; 404 = every answer 404 (wrk counts them
# as status errors).
scenarios=(
  "a) GET existing keys|get_existing.lua|ours|base|ok"
  "b) GET missing keys|get_missing.lua|ours|base|404"
  "c) SET new keys|set_new.lua|ours|base|ok"
  "c') SET new keys, ours durable (--fsync everysec)|set_new.lua|ours_es|base|ok"
  "d) SET overwriting keys|set_overwrite.lua|ours|base|ok"
  "e) 90% GET / 10% SET|mix.lua|ours|base|ok"
  "f) GET, ${CLIENTS} XFF clients, limiter on vs off|get_xff.lua|ours_rl|ours_norl|ok"
)
conn_modes=(keepalive close)
if [[ -n ${ROWS:-} ]]; then
  picked=()
  for letter in $ROWS; do
    found=""
    for sc in "${scenarios[@]}"; do
      if [[ ${sc%%)*} == "$letter" ]]; then picked+=("$sc"); found=1; fi
    done
    [[ -n $found ]] || die "ROWS=$ROWS: no scenario $letter (want letters among a b c c' d e f)"
  done
  scenarios=("${picked[@]}")
fi

log "building rendezvous, baseline and loader into $tmp"
go build -o "$tmp/rendezvous" .
go build -o "$tmp/baseline" ./bench/baseline
go build -o "$tmp/loader" ./bench/loader

# start NAME CMD...: runs CMD with its log in $tmp/NAME.log, waits until it
# listens, and sets ADDR_NAME and PID_NAME.
start() {
  local name=$1; shift
  start_server "$tmp/$name.log" "$@"
  printf -v "ADDR_$name" '%s' "$server_addr"
  printf -v "PID_$name" '%s' "$server_pid"
}

alive() {
  local name=$1 pid_var="PID_$1"
  if ! kill -0 "${!pid_var}" 2>/dev/null; then
    tail -n 20 "$tmp/$name.log" >&2
    die "$name is no longer running"
  fi
}

ours_flags=(--addr 127.0.0.1:0 --data '' --max-keys 2000000)
start ours "$tmp/rendezvous" "${ours_flags[@]}" --rate off
start base "$tmp/baseline" -addr 127.0.0.1:0
start ours_rl "$tmp/rendezvous" "${ours_flags[@]}" --rate 1000000/1s --trusted-proxy 127.0.0.1
start ours_norl "$tmp/rendezvous" "${ours_flags[@]}" --rate off --trusted-proxy 127.0.0.1
# Durable: the journal with its default fsync policy, as a real instance runs.
start ours_es "$tmp/rendezvous" --addr 127.0.0.1:0 --data "$tmp/es.db" --fsync everysec --max-keys 2000000 --rate off
# shellcheck disable=SC2154 # ADDR_* are set by start() through printf -v
log "ours http://$ADDR_ours, baseline http://$ADDR_base, ours rate-limited http://$ADDR_ours_rl, ours not limited (same proxy setup) http://$ADDR_ours_norl"

for name in ours base ours_rl ours_norl ours_es; do
  addr_var="ADDR_$name"
  run "$tmp/loader" -url "http://${!addr_var}" -keys "$KEYS" -value-size 200 -conns 32 >"$tmp/load-$name.out" ||
    die "preloading $name failed"
  log "preloading $name: $(cat "$tmp/load-$name.out")"
done

# Warm-up: the first runs after preloading were the slowest of a whole
# invocation (row a once went 24k, 33k, 37k, 52k req/s over its four
# runs), which alternation does not cancel, so every instance first takes
# a short discarded run.
for name in ours base ours_rl ours_norl ours_es; do
  addr_var="ADDR_$name"
  if ! run timeout --kill-after=5 30 wrk -t"$THREADS" -c"$CONNS" -d2s --timeout 5s \
    -s bench/lua/get_existing.lua "http://${!addr_var}" -- "$KEYS" >"$tmp/warmup-$name.out" 2>&1; then
    cat "$tmp/warmup-$name.out" >&2
    die "warm-up of $name failed"
  fi
done
log "warmed up every instance (2 s of GETs each, not counted)"

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
total=$((${#scenarios[@]} * ${#conn_modes[@]} * 4 * BLOCKS))
# a b b a, BLOCKS times: both sides then have the same mean position in a
# row, so a steady drift of the machine (the runs of a row often rise or
# fall by 10% from first to last) cancels out. With a b a b the first side
# always ran one slot earlier on average. More blocks average out the
# short swings that one block of four runs left in a row (a row moved by
# up to ±0.08 between invocations).
sides=()
for ((i = 0; i < BLOCKS; i++)); do sides+=(a b b a); done
step=0
run_id=0
rows=()
warnings=()

for sc in "${scenarios[@]}"; do
  # shellcheck disable=SC2034 # a and b are read as ${!side}
  IFS='|' read -r label script a b expect <<<"$sc"
  for conn in "${conn_modes[@]}"; do
    if [[ $conn == close ]]; then mode="Connection: close"; else mode="keep-alive"; fi
    declare -A runs=()
    for k in a_rps a_p50 a_p99 b_rps b_p50 b_p99; do runs[$k]=""; done
    for side in "${sides[@]}"; do
      inst=${!side}
      addr_var="ADDR_$inst"
      run_id=$((run_id + 1))
      step=$((step + 1))
      args=("$KEYS")
      case $script in
        set_new.lua) args=("r$run_id") ;;
        get_xff.lua) args=("$KEYS" "$CLIENTS") ;;
      esac
      run_wrk "$tmp/wrk-$run_id.out" "http://${!addr_var}" "$script" "$conn" "${args[@]}"
      alive "$inst"
      requests=$(field "$line" requests)
      rps=$(field "$line" rps)
      p50=$(field "$line" p50_us)
      p99=$(field "$line" p99_us)
      status=$(field "$line" status)
      sockerr=$(($(field "$line" connect) + $(field "$line" read) + $(field "$line" write) + $(field "$line" timeout)))
      log "[$step/$total] $label, $mode, $inst: $rps req/s, p50 ${p50}us, p99 ${p99}us"
      if [[ $requests -eq 0 ]]; then
        die "$label ($mode) on $inst: no request completed"
      fi
      if [[ $expect == ok && $status -ne 0 ]]; then
        warnings+=("$label ($mode) on $inst: $status of $requests answers were not 2xx")
      fi
      if [[ $expect == 404 && $status -ne $requests ]]; then
        warnings+=("$label ($mode) on $inst: $((requests - status)) of $requests answers were not 404")
      fi
      if [[ $sockerr -ne 0 ]]; then
        warnings+=("$label ($mode) on $inst: $sockerr socket errors ($line)")
      fi
      runs[${side}_rps]+=" $rps"
      runs[${side}_p50]+=" $p50"
      runs[${side}_p99]+=" $p99"
    done
    rows+=("$(awk -v label="$label · $mode" \
      -v ar="$(median "${runs[a_rps]}")" -v a50="$(median "${runs[a_p50]}")" -v a99="$(median "${runs[a_p99]}")" \
      -v br="$(median "${runs[b_rps]}")" -v b50="$(median "${runs[b_p50]}")" -v b99="$(median "${runs[b_p99]}")" \
      -v am="$(mean "${runs[a_rps]}")" -v bm="$(mean "${runs[b_rps]}")" 'BEGIN {
        # medians of the runs of each side; latencies in us -> ms
        printf "| %s | %.0f | %.0f | %.2f | %.2f | %.2f ms | %.2f ms | %.2f ms | %.2f ms |",
          label, ar, br, (br > 0 ? ar / br : 0), (bm > 0 ? am / bm : 0),
          a50 / 1000, a99 / 1000, b50 / 1000, b99 / 1000
      }')")
    unset runs
  done
done

# --- report --------------------------------------------------------------
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
report() {
  echo "## rendezvous load benchmark"
  echo
  echo "- machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr), $(go version | sed 's/^go version //')"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load average before the runs $load_before, after $load_after (1-min, 5-min, 15-min; wrk and the server under test account for about 3 of it, much more means other work shared the machine)"
  echo "- wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'): $THREADS threads, $CONNS connections, $DURATION per run, on the same machine as the servers (loopback)"
  echo "- each row: $((4 * BLOCKS)) runs, in the order ours, baseline, baseline, ours repeated $BLOCKS time(s) (a steady drift of the machine cancels out); req/s, p50 and p99 are the median of the $((2 * BLOCKS)) runs of each side (other work on this shared machine only ever slows a run, and one slowed run moved a row's ratio of means by 0.10)"
  if [[ -n ${ROWS:-} ]]; then echo "- rows: only $ROWS (ROWS)"; fi
  echo "- data: $KEYS keys preloaded into every instance (200-byte values); ours: \`--data '' --rate off --max-keys 2000000\` (memory only: no journal or snapshot work); baseline: bench/baseline (net/http, map + RWMutex)"
  echo "- row c': ours with \`--data FILE --fsync everysec\` (journal and snapshots on, the default durability), against the same baseline"
  echo "- row f: the \"ours\" columns are ours with \`--rate 1000000/1s --trusted-proxy 127.0.0.1\` (limiter on, never refuses), the \"baseline\" columns ours with \`--rate off --trusted-proxy 127.0.0.1\`"
  echo "- ratio = ours req/s / baseline req/s (medians); ratio of means: the same from each side's mean req/s, for comparison"
  echo
  echo "| scenario | ours req/s | baseline req/s | ratio | ratio of means | ours p50 | ours p99 | baseline p50 | baseline p99 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  if [[ ${#warnings[@]} -gt 0 ]]; then
    echo
    echo "Warnings:"
    printf -- '- %s\n' "${warnings[@]}"
  fi
}

mkdir -p "$root/bench/results"
report | tee "$root/bench/results/latest.md"
log "written to bench/results/latest.md"
