#!/usr/bin/env bash
# Write throughput of one POST /txn with four set operations against four
# single POST /set requests, in operations per second, with wrk on
# loopback. See bench/README.md.
#
#   bench/txn.sh          # 8 wrk runs of 3 s per row, about 2 minutes
#   bench/txn.sh quick    # 4 wrk runs of 2 s per row, about 1 minute
#
# Environment: DURATION (wrk -d, default 3s; 2s for quick), BLOCKS (blocks
# of four runs per row, 2; 1 for quick), THREADS (2), CONNS (64), KEYS
# (preloaded keys, 100000), OPS (set operations per transaction, 4).
#
# It prints the machine and one markdown table, and writes both to
# bench/results/txn.md. Every process it starts is stopped on exit. Only
# 127.0.0.1 is ever contacted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

OPS=${OPS:-4}

BENCH_NAME=txn
# shellcheck source=bench/lib.sh
source bench/lib.sh
wrk_options "$@"
[[ $OPS =~ ^[0-9]+$ && $OPS -gt 0 && $OPS -le 100 ]] || die "OPS=$OPS: want 1..100 (the default --max-batch-ops)"

command -v go >/dev/null || die "go is not on PATH (the module needs Go $(sed -n 's/^go //p' go.mod))"
command -v curl >/dev/null || die "curl is missing (it checks one transaction before the runs)"
need_tools

# rows: label | instance | connection mode
rows_spec=(
  "memory only|mem|keepalive"
  "memory only|mem|close"
  "durable (--fsync everysec)|es|keepalive"
)

log "building rendezvous and loader into $tmp"
go build -o "$tmp/rendezvous" .
go build -o "$tmp/loader" ./bench/loader

start_server "$tmp/mem.log" "$tmp/rendezvous" --addr 127.0.0.1:0 --data '' --rate off --max-keys 2000000
ADDR_mem=$server_addr PID_mem=$server_pid
start_server "$tmp/es.log" "$tmp/rendezvous" --addr 127.0.0.1:0 --data "$tmp/es.db" --fsync everysec --rate off --max-keys 2000000
ADDR_es=$server_addr PID_es=$server_pid

for name in mem es; do
  addr_var="ADDR_$name"
  run "$tmp/loader" -url "http://${!addr_var}" -keys "$KEYS" -value-size 200 -conns 32 >"$tmp/load-$name.out" ||
    die "preloading $name failed"
  log "preloading $name: $(cat "$tmp/load-$name.out")"
  # One transaction by hand: the endpoint must commit, or every run below
  # would only measure refusals.
  answer=$(curl -sS -X POST -H 'Content-Type: application/json' \
    --data '{"ops":[{"op":"set","key":"k0","value":"a"},{"op":"set","key":"k1","value":"b"}]}' \
    "http://${!addr_var}/txn")
  [[ $answer == *'"ok":true'* ]] || die "POST /txn on $name answered $answer"
  [[ $(curl -sS "http://${!addr_var}/get/k1") == b ]] || die "POST /txn on $name did not write k1"
done

# Warm-up, not counted: the first runs after preloading are the slowest
# of an invocation (see run.sh).
for name in mem es; do
  addr_var="ADDR_$name"
  run_wrk "$tmp/warmup-$name.out" "http://${!addr_var}" set_overwrite.lua keepalive "$KEYS"
done
log "warmed up both instances (one run of SETs each, not counted)"

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
# a = one transaction of OPS sets per request, b = one set per request;
# a b b a, BLOCKS times, so a steady drift of the machine hits both alike.
sides=()
for ((i = 0; i < BLOCKS; i++)); do sides+=(a b b a); done
total=$((${#rows_spec[@]} * 4 * BLOCKS))
step=0
rows=()
warnings=()

for spec in "${rows_spec[@]}"; do
  IFS='|' read -r label inst conn <<<"$spec"
  addr_var="ADDR_$inst"
  pid_var="PID_$inst"
  if [[ $conn == close ]]; then mode="Connection: close"; else mode="keep-alive"; fi
  declare -A runs=()
  for k in a_rps a_p50 a_p99 b_rps b_p50 b_p99; do runs[$k]=""; done
  for side in "${sides[@]}"; do
    step=$((step + 1))
    if [[ $side == a ]]; then
      run_wrk "$tmp/wrk-$step.out" "http://${!addr_var}" txn_set4.lua "$conn" "$KEYS" "$OPS"
      what="txn of $OPS sets"
    else
      run_wrk "$tmp/wrk-$step.out" "http://${!addr_var}" set_overwrite.lua "$conn" "$KEYS"
      what="single sets"
    fi
    kill -0 "${!pid_var}" 2>/dev/null || { tail -n 20 "$tmp/$inst.log" >&2; die "$inst is no longer running"; }
    requests=$(field "$line" requests)
    rps=$(field "$line" rps)
    status=$(field "$line" status)
    sockerr=$(($(field "$line" connect) + $(field "$line" read) + $(field "$line" write) + $(field "$line" timeout)))
    log "[$step/$total] $label, $mode, $what: $rps req/s, p50 $(field "$line" p50_us)us, p99 $(field "$line" p99_us)us"
    [[ $requests -gt 0 ]] || die "$label ($mode), $what: no request completed"
    if [[ $status -ne 0 ]]; then warnings+=("$label ($mode), $what: $status of $requests answers were not 2xx"); fi
    if [[ $sockerr -ne 0 ]]; then warnings+=("$label ($mode), $what: $sockerr socket errors ($line)"); fi
    runs[${side}_rps]+=" $rps"
    runs[${side}_p50]+=" $(field "$line" p50_us)"
    runs[${side}_p99]+=" $(field "$line" p99_us)"
  done
  rows+=("$(awk -v label="$label · $mode" -v ops="$OPS" \
    -v ar="$(median "${runs[a_rps]}")" -v a50="$(median "${runs[a_p50]}")" -v a99="$(median "${runs[a_p99]}")" \
    -v br="$(median "${runs[b_rps]}")" -v b50="$(median "${runs[b_p50]}")" -v b99="$(median "${runs[b_p99]}")" \
    -v am="$(mean "${runs[a_rps]}")" -v bm="$(mean "${runs[b_rps]}")" 'BEGIN {
      # ops/s: a transaction carries ops writes, a single set one
      printf "| %s | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f ms | %.2f ms | %.2f ms | %.2f ms |",
        label, ar, ar * ops, br, (br > 0 ? ar * ops / br : 0), (bm > 0 ? am * ops / bm : 0),
        a50 / 1000, a99 / 1000, b50 / 1000, b99 / 1000
    }')")
  unset runs
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
report() {
  echo "## rendezvous: one /txn of $OPS sets against $OPS single /set requests"
  echo
  echo "- machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr), $(go version | sed 's/^go version //')"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load average before the runs $load_before, after $load_after"
  echo "- wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'): $THREADS threads, $CONNS connections, $DURATION per run, on the same machine as the server (loopback)"
  echo "- each row: $((4 * BLOCKS)) runs on one server, in the order txn, set, set, txn repeated $BLOCKS time(s); figures are the median of each side's $((2 * BLOCKS)) runs"
  echo "- data: $KEYS keys preloaded (200-byte values); every write overwrites a random one of them with a 200-byte value; servers \`--rate off --max-keys 2000000\`, memory only (\`--data ''\`) or \`--data FILE --fsync everysec\`"
  echo "- ops/s = requests/s × operations per request; ratio = txn ops/s / set ops/s (target ≥ 2); ratio of means: the same from each side's mean"
  echo
  echo "| scenario | txn req/s | txn ops/s | set ops/s | ratio | ratio of means | txn p50 | txn p99 | set p50 | set p99 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  if [[ ${#warnings[@]} -gt 0 ]]; then
    echo
    echo "Warnings:"
    printf -- '- %s\n' "${warnings[@]}"
  fi
}

mkdir -p "$root/bench/results"
report | tee "$root/bench/results/txn.md"
log "written to bench/results/txn.md"
