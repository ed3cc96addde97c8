#!/usr/bin/env bash
# The cost of TLS: GET of existing keys over TLS against the same over
# plaintext (keep-alive), and TLS handshakes per second (a GET with
# `Connection: close`, so one full handshake per request) against a
# minimal Go TLS server with the same certificate. wrk on loopback. See
# bench/README.md.
#
#   bench/tls.sh          # 8 wrk runs of 3 s per row, about 2 minutes
#   bench/tls.sh quick    # 4 wrk runs of 2 s per row, about 1 minute
#
# Environment: DURATION (wrk -d, default 3s; 2s for quick), BLOCKS (blocks
# of four runs per row, 2; 1 for quick), THREADS (2), CONNS (64), KEYS
# (preloaded keys, 100000).
#
# It prints the machine and one markdown table, and writes both to
# bench/results/tls.md. Every process it starts is stopped on exit. Only
# 127.0.0.1 is ever contacted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

BENCH_NAME=tls
# shellcheck source=bench/lib.sh
source bench/lib.sh
wrk_options "$@"

command -v go >/dev/null || die "go is not on PATH (the module needs Go $(sed -n 's/^go //p' go.mod))"
command -v curl >/dev/null || die "curl is missing (it checks each server before the runs)"
need_tools

# rows: label | side a | side b | connection mode; a is always ours over
# TLS, the ratio is a / b.
rows_spec=(
  "GET existing keys, TLS against plaintext|tls|plain|keepalive"
  "TLS handshakes (GET, one connection each), against the Go TLS server|tls|base|close"
  "GET existing keys over TLS, against the Go TLS server|tls|base|keepalive"
)

log "building rendezvous, baseline, loader and tlscert into $tmp"
go build -o "$tmp/rendezvous" .
go build -o "$tmp/baseline" ./bench/baseline
go build -o "$tmp/loader" ./bench/loader
go run ./bench/tlscert -dir "$tmp"
cert=$tmp/cert.pem key=$tmp/key.pem

ours=("$tmp/rendezvous" --addr 127.0.0.1:0 --data '' --rate off --max-keys 2000000)
start_server "$tmp/tls.log" "${ours[@]}" --tls-cert "$cert" --tls-key "$key"
URL_tls=https://$server_addr PID_tls=$server_pid
start_server "$tmp/plain.log" "${ours[@]}"
URL_plain=http://$server_addr PID_plain=$server_pid
start_server "$tmp/base.log" "$tmp/baseline" --addr 127.0.0.1:0 -tls-cert "$cert" -tls-key "$key"
URL_base=https://$server_addr PID_base=$server_pid

for name in tls plain base; do
  url_var="URL_$name"
  run "$tmp/loader" -url "${!url_var}" -ca "$cert" -keys "$KEYS" -value-size 200 -conns 32 >"$tmp/load-$name.out" ||
    die "preloading $name failed"
  log "preloading $name: $(cat "$tmp/load-$name.out")"
  # The certificate must verify, or wrk (which does not verify) could be
  # measuring some other setup than the one described.
  [[ $(curl -sS --cacert "$cert" "${!url_var}/get/k1" | wc -c) == 200 ]] || die "GET /get/k1 on $name is not the stored value"
done

# cpu_ticks PID: user plus system CPU time of PID so far, in clock ticks.
# CPU time per request is steadier than req/s on a shared machine, where
# other work takes the cores away from both sides unevenly.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Warm-up, not counted: the first runs after preloading are the slowest
# of an invocation (see run.sh).
for name in tls plain base; do
  url_var="URL_$name"
  run_wrk "$tmp/warmup-$name.out" "${!url_var}" get_existing.lua keepalive "$KEYS"
done
log "warmed up every server (one run of GETs each, not counted)"

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
# a b b a, BLOCKS times, so a steady drift of the machine hits both alike.
sides=()
for ((i = 0; i < BLOCKS; i++)); do sides+=(a b b a); done
total=$((${#rows_spec[@]} * 4 * BLOCKS))
step=0
rows=()
warnings=()

for spec in "${rows_spec[@]}"; do
  IFS='|' read -r label side_a side_b conn <<<"$spec"
  if [[ $conn == close ]]; then mode="Connection: close"; else mode="keep-alive"; fi
  declare -A runs=()
  for k in a_rps a_p50 a_p99 a_cpu b_rps b_p50 b_p99 b_cpu; do runs[$k]=""; done
  for side in "${sides[@]}"; do
    step=$((step + 1))
    if [[ $side == a ]]; then name=$side_a; else name=$side_b; fi
    url_var="URL_$name" pid_var="PID_$name"
    ticks=$(cpu_ticks "${!pid_var}")
    run_wrk "$tmp/wrk-$step.out" "${!url_var}" get_existing.lua "$conn" "$KEYS"
    ticks=$(($(cpu_ticks "${!pid_var}") - ticks))
    kill -0 "${!pid_var}" 2>/dev/null || { tail -n 20 "$tmp/$name.log" >&2; die "$name is no longer running"; }
    requests=$(field "$line" requests)
    rps=$(field "$line" rps)
    status=$(field "$line" status)
    sockerr=$(($(field "$line" connect) + $(field "$line" read) + $(field "$line" write) + $(field "$line" timeout)))
    cpu_us=$(awk -v t="$ticks" -v hz="$clk_tck" -v n="$requests" 'BEGIN {printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0)}')
    log "[$step/$total] $label, $mode, $name: $rps req/s, p50 $(field "$line" p50_us)us, p99 $(field "$line" p99_us)us, server CPU ${cpu_us}us/request"
    [[ $requests -gt 0 ]] || die "$label ($mode), $name: no request completed"
    if [[ $status -ne 0 ]]; then warnings+=("$label ($mode), $name: $status of $requests answers were not 2xx"); fi
    if [[ $sockerr -ne 0 ]]; then warnings+=("$label ($mode), $name: $sockerr socket errors ($line)"); fi
    runs[${side}_rps]+=" $rps"
    runs[${side}_p50]+=" $(field "$line" p50_us)"
    runs[${side}_p99]+=" $(field "$line" p99_us)"
    runs[${side}_cpu]+=" $cpu_us"
  done
  rows+=("$(awk -v label="$label · $mode" \
    -v ar="$(median "${runs[a_rps]}")" -v a50="$(median "${runs[a_p50]}")" -v a99="$(median "${runs[a_p99]}")" \
    -v br="$(median "${runs[b_rps]}")" -v b50="$(median "${runs[b_p50]}")" -v b99="$(median "${runs[b_p99]}")" \
    -v am="$(mean "${runs[a_rps]}")" -v bm="$(mean "${runs[b_rps]}")" \
    -v ac="$(median "${runs[a_cpu]}")" -v bc="$(median "${runs[b_cpu]}")" 'BEGIN {
      printf "| %s | %.0f | %.0f | %.2f | %.2f | %.1f | %.1f | %.2f | %.2f ms | %.2f ms | %.2f ms | %.2f ms |",
        label, ar, br, (br > 0 ? ar / br : 0), (bm > 0 ? am / bm : 0),
        ac, bc, (ac > 0 ? bc / ac : 0),
        a50 / 1000, a99 / 1000, b50 / 1000, b99 / 1000
    }')")
  unset runs
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
report() {
  echo "## rendezvous over TLS: against plaintext, and against a minimal Go TLS server"
  echo
  echo "- machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr), $(go version | sed 's/^go version //')"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load average before the runs $load_before, after $load_after"
  echo "- wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'): $THREADS threads, $CONNS connections, $DURATION per run, on the same machine as the servers (loopback); HTTP/1.1 (wrk offers no ALPN)"
  echo "- each row: $((4 * BLOCKS)) runs, in the order ours, other, other, ours repeated $BLOCKS time(s); figures are the median of each side's $((2 * BLOCKS)) runs"
  echo "- data: $KEYS keys preloaded (200-byte values), GETs uniformly over them; ours \`--data '' --rate off --max-keys 2000000\`, over TLS with \`--tls-cert --tls-key\`; the Go TLS server is \`bench/baseline -tls-cert -tls-key\` (net/http ServeTLS, a map); one self-signed ECDSA P-256 certificate for both"
  echo "- ratio = ours over TLS / the other side's req/s (target ≥ 0.9); ratio of means: the same from each side's mean"
  echo "- CPU µs/req: the server process's user + system CPU time over a run / its requests (median of the runs); CPU ratio = other / ours, so that above 1 is ours cheaper, like the req/s ratio"
  echo
  echo "| scenario | ours TLS req/s | other req/s | ratio | ratio of means | ours CPU µs/req | other CPU µs/req | CPU ratio | ours p50 | ours p99 | other p50 | other p99 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  if [[ ${#warnings[@]} -gt 0 ]]; then
    echo
    echo "Warnings:"
    printf -- '- %s\n' "${warnings[@]}"
  fi
}

mkdir -p "$root/bench/results"
report | tee "$root/bench/results/tls.md"
log "written to bench/results/tls.md"
