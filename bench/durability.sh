#!/usr/bin/env bash
# Write throughput over HTTP by fsync mode: wrk SET of new keys (200-byte
# values, bench/lua/set_new.lua) against rendezvous in memory only and with
# --fsync no, everysec and always. See bench/README.md.
#
#   bench/durability.sh          # 8 rounds of 4 runs, 4 s each: about 4 minutes
#   bench/durability.sh quick    # 1 round, 2 s each: about 15 s
#
# Environment: DURATION (wrk -d, default 4s; 2s for quick), ROUNDS (8; 1 for
# quick), THREADS (2), CONNS (64), BIN (a built server; default: build one).
#
# Every run starts a fresh server on a new, empty data folder, so the
# journal and snapshot work of each run is comparable; the modes alternate
# within each round so that drift of the machine hits all of them alike.
# It prints the machine and one markdown table, and writes both to
# bench/results/durability.md. Every process it starts is stopped on exit.
# Only 127.0.0.1 is ever contacted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

case "${1:-}" in
  quick)
    DURATION=${DURATION:-2s}
    ROUNDS=${ROUNDS:-1}
    ;;
  "" | full) ;;
  *) echo "usage: bench/durability.sh [quick]" >&2; exit 2 ;;
esac
# Eight rounds: with four, one invocation's everysec ratio came out 0.91,
# 0.98 and 0.85 on the same build, the runs of one mode within an
# invocation spreading by ±15% on this shared machine.
DURATION=${DURATION:-4s}
ROUNDS=${ROUNDS:-8}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
BIN=${BIN:-}

BENCH_NAME=durability
# shellcheck source=bench/lib.sh
source bench/lib.sh

dur_s=$(duration_secs "$DURATION")
[[ $dur_s =~ ^[0-9]+$ && $dur_s -gt 0 ]] || die "DURATION=$DURATION: want a wrk duration like 5s"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -gt 0 && $ROUNDS -le 20 ]] || die "ROUNDS=$ROUNDS: want 1..20"

need_tools
srv_pid="" # the running server, if any

if [[ -z $BIN ]]; then
  command -v go >/dev/null || die "go is not on PATH (or set BIN to a built server)"
  log "building rendezvous into $tmp"
  go build -o "$tmp/rendezvous" .
  BIN=$tmp/rendezvous
  bin_desc="built from the working tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)'), $(go version | sed 's/^go version //')"
else
  bin_desc="BIN=$BIN"
fi
[[ -x $BIN ]] || die "BIN=$BIN is not an executable"

# start LOG ARGS...: starts the server with ARGS, its output in LOG, and
# sets addr and srv_pid.
start() {
  local logf=$1; shift
  start_server "$logf" "$BIN" "$@"
  addr=$server_addr
  srv_pid=$server_pid
}

# stop: stops the running server.
stop() {
  stop_server "$srv_pid"
  srv_pid=""
}

# mode flags: the data flags of each mode; everything else is common.
modes=(memory no everysec always)
declare -A label=(
  [memory]="memory only"
  [no]="--fsync no"
  [everysec]="--fsync everysec"
  [always]="--fsync always"
)
declare -A target=([everysec]=0.9 [always]=0.3)
common=(--addr 127.0.0.1:0 --rate off --max-keys 5000000)

mode_flags() {
  local dir=$2
  case $1 in
    memory) flags=(--data '') ;;
    no) flags=(--data "$dir/no.db" --fsync no) ;;
    everysec) flags=(--data "$dir/es.db" --fsync everysec) ;;
    always) flags=(--data "$dir/al.db" --fsync always) ;;
  esac
}

declare -A rps_list=() p50_list=() p99_list=() snap_sum=() disk_sum=()
for m in "${modes[@]}"; do
  rps_list[$m]=""; p50_list[$m]=""; p99_list[$m]=""; snap_sum[$m]=0; disk_sum[$m]=0
done
warnings=()
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
total=$((ROUNDS * ${#modes[@]}))
step=0

for ((round = 1; round <= ROUNDS; round++)); do
  # Each round starts one mode later than the last, so that over four
  # rounds every mode runs once in every position: a run right after
  # another pays for what the kernel still does for that one (writeback,
  # freeing its files), and a fixed order would charge that to the same
  # mode every time.
  k=$(((round - 1) % ${#modes[@]}))
  for m in "${modes[@]:k}" "${modes[@]:0:k}"; do
    step=$((step + 1))
    dir=$tmp/run-$step
    mkdir -p "$dir"
    mode_flags "$m" "$dir"
    start "$dir/server.log" "${common[@]}" "${flags[@]}"
    out=$dir/wrk.out
    if ! run timeout --kill-after=5 $((dur_s + 30)) \
      wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 5s --latency \
      -s bench/lua/set_new.lua "http://$addr" -- "r$step" >"$out" 2>&1; then
      cat "$out" >&2
      die "wrk failed against ${label[$m]}"
    fi
    if ! kill -0 "$srv_pid" 2>/dev/null; then
      tail -n 20 "$dir/server.log" >&2
      die "${label[$m]}: the server is no longer running"
    fi
    line=$(grep -m1 '^BENCH ' "$out") || { cat "$out" >&2; die "no BENCH line from wrk"; }
    # What persistence did during the run: snapshots the server wrote
    # (journal-size triggered; --save-interval is the default 1m) and the
    # bytes of snapshot and journal files in the data folder (not a snapshot's
    # temp file, should one be in progress), before the final snapshot at
    # shutdown.
    snaps=$(grep -c 'msg="snapshot written"' "$dir/server.log" || true)
    disk=0
    if [[ $m != memory ]]; then
      disk=$(find "$dir" -maxdepth 1 -type f \( -name '*.db' -o -name '*.db.journal.*' \) -printf '%s\n' |
        awk '{s += $1} END {print s + 0}')
    fi
    stop
    requests=$(field "$line" requests)
    rps=$(field "$line" rps)
    p50=$(field "$line" p50_us)
    p99=$(field "$line" p99_us)
    status=$(field "$line" status)
    sockerr=$(($(field "$line" connect) + $(field "$line" read) + $(field "$line" write) + $(field "$line" timeout)))
    log "[$step/$total] ${label[$m]}: $rps req/s, p50 ${p50}us, p99 ${p99}us, $snaps snapshots, $disk bytes on disk"
    [[ $requests -gt 0 ]] || die "${label[$m]}: no request completed"
    if [[ $status -ne 0 ]]; then
      warnings+=("${label[$m]} (round $round): $status of $requests answers were not 2xx")
    fi
    if [[ $sockerr -ne 0 ]]; then
      warnings+=("${label[$m]} (round $round): $sockerr socket errors ($line)")
    fi
    rps_list[$m]+="${rps_list[$m]:+ }$rps"
    p50_list[$m]+=" $p50"
    p99_list[$m]+=" $p99"
    snap_sum[$m]=$((snap_sum[$m] + snaps))
    disk_sum[$m]=$((disk_sum[$m] + disk))
    rm -rf "$dir"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

mem_median=$(median "${rps_list[memory]}")
mem_mean=$(mean "${rps_list[memory]}")

rows=()
for m in "${modes[@]}"; do
  rows+=("$(awk -v label="${label[$m]}" -v runs="${rps_list[$m]}" -v mem="$mem_median" -v memmean="$mem_mean" \
    -v med="$(median "${rps_list[$m]}")" -v p50="$(median "${p50_list[$m]}")" -v p99="$(median "${p99_list[$m]}")" -v n="$ROUNDS" \
    -v snaps="${snap_sum[$m]}" -v disk="${disk_sum[$m]}" -v tgt="${target[$m]:-}" -v ismem="$([[ $m == memory ]] && echo 1 || echo 0)" 'BEGIN {
      k = split(runs, r, " "); s = 0; list = ""
      for (i = 1; i <= k; i++) { s += r[i]; list = list (i > 1 ? ", " : "") sprintf("%.0f", r[i]) }
      mean = s / k
      ratio = mem > 0 ? med / mem : 0
      mratio = memmean > 0 ? mean / memmean : 0
      t = "—"
      if (tgt != "") t = sprintf("≥ %.1f: %s (%.3f)", tgt, ratio >= tgt ? "met" : "**missed**", ratio)
      d = ismem ? "—" : sprintf("%.1f MiB", disk / n / 1048576)
      printf "| %s | %.0f | %s | %.2f | %s | %.2f | %.2f ms | %.2f ms | %.1f | %s |",
        label, med, list, ratio, t, mratio, p50 / 1000, p99 / 1000, snaps / n, d
    }')")
done

fs=$(df -PT "$tmp" 2>/dev/null | awk 'NR == 2 {print $2 " on " $1}')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
report() {
  echo "## rendezvous write throughput by fsync mode"
  echo
  echo "- machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr); server: $bin_desc"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load average before $load_before, after $load_after (1-, 5-, 15-min)"
  echo "- data folder: ${TMPDIR:-/tmp} ($fs); fsync costs what this disk makes it cost"
  echo "- wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'): $THREADS threads, $CONNS connections, $DURATION per run, \`bench/lua/set_new.lua\` (POST of a key never written before, 200-byte value), on the same machine (loopback)"
  echo "- servers: \`rendezvous ${common[*]}\` plus \`--data ''\` (memory only) or \`--data \$dir/X.db --fsync MODE\`; default --save-interval (1m), so snapshots during a run are the ones the journal size triggers"
  echo "- $ROUNDS round(s) of 4 runs; round 1 in the order memory, no, everysec, always, and each later round starting one mode further on (round 2: no, everysec, always, memory), so that over 4 rounds each mode runs once in each position; every run on a fresh server and an empty data folder"
  echo "- req/s: median of the runs (each run listed; other work on this shared machine only ever slows a run, so one slowed run moves a mean, not a median); ratio: median / median of memory only in this invocation; ratio of means: the same from means, for comparison; p50, p99: median of the runs' wrk percentiles; snapshots: written during a run (mean); on disk: snapshot plus journal bytes at the end of a run, before shutdown (mean; on Linux the open journal file includes up to 4 MiB preallocated after its last record)"
  echo
  echo "| mode | req/s | runs | ratio to memory | target | ratio of means | p50 | p99 | snapshots | on disk |"
  echo "|---|---:|---|---:|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  if [[ ${#warnings[@]} -gt 0 ]]; then
    echo
    echo "Warnings (a mode with warnings is not a valid measurement):"
    printf -- '- %s\n' "${warnings[@]}"
  fi
}

mkdir -p "$root/bench/results"
report | tee "$root/bench/results/durability.md"
log "written to bench/results/durability.md"
