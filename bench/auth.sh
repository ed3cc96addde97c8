#!/usr/bin/env bash
# GET of existing keys with a bearer token, verified through a token file
# and through a JWT (HS256), against the same GETs without authentication,
# with wrk on loopback. See bench/README.md.
#
#   bench/auth.sh          # 8 wrk runs of 3 s per side, about 2 minutes
#   bench/auth.sh quick    # 4 wrk runs of 2 s per side, about 1 minute
#
# Environment: DURATION (wrk -d, default 3s; 2s for quick), BLOCKS (blocks
# of the six-run sequence, 2; 1 for quick), THREADS (2), CONNS (64), KEYS
# (preloaded keys, 100000).
#
# It prints the machine and one markdown table, and writes both to
# bench/results/auth.md. Every process it starts is stopped on exit. Only
# 127.0.0.1 is ever contacted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

BENCH_NAME=auth
# shellcheck source=bench/lib.sh
source bench/lib.sh
wrk_options "$@"

command -v go >/dev/null || die "go is not on PATH (the module needs Go $(sed -n 's/^go //p' go.mod))"
command -v curl >/dev/null || die "curl is missing (it checks the tokens before the runs)"
command -v openssl >/dev/null || die "openssl is missing (it signs the benchmark's JWT)"
need_tools

log "building rendezvous and loader into $tmp"
go build -o "$tmp/rendezvous" .
go build -o "$tmp/loader" ./bench/loader

# The credentials: one token-file token and one HS256 JWT, each granting
# every key, so that every request is verified and then allowed.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
secret=$(openssl rand -hex 32)
printf '%s\n' "$secret" >"$tmp/jwt.secret"
file_token=$(openssl rand -hex 24)
printf '%s bench rw:\n' "$file_token" >"$tmp/tokens"
jwt_head=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
jwt_body=$(printf '{"sub":"bench","exp":%d,"grants":["rw:"]}' $(($(date +%s) + 86400)) | b64url)
jwt_sig=$(printf '%s.%s' "$jwt_head" "$jwt_body" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)
jwt_token="$jwt_head.$jwt_body.$jwt_sig"

# Anonymous callers may write everything, so the loader preloads as it
# does elsewhere; the measured GETs carry the token.
common=(--addr 127.0.0.1:0 --data '' --rate off --max-keys 2000000)
start_server "$tmp/none.log" "$tmp/rendezvous" "${common[@]}"
ADDR_none=$server_addr PID_none=$server_pid
start_server "$tmp/file.log" "$tmp/rendezvous" "${common[@]}" --auth-file "$tmp/tokens" --anonymous "rw:"
ADDR_file=$server_addr PID_file=$server_pid
start_server "$tmp/jwt.log" "$tmp/rendezvous" "${common[@]}" --jwt-secret-file "$tmp/jwt.secret" --anonymous "rw:"
ADDR_jwt=$server_addr PID_jwt=$server_pid
TOKEN_none="" TOKEN_file=$file_token TOKEN_jwt=$jwt_token

for name in none file jwt; do
  addr_var="ADDR_$name" token_var="TOKEN_$name"
  run "$tmp/loader" -url "http://${!addr_var}" -keys "$KEYS" -value-size 200 -conns 32 >"$tmp/load-$name.out" ||
    die "preloading $name failed"
  log "preloading $name: $(cat "$tmp/load-$name.out")"
  if [[ -n ${!token_var} ]]; then
    # The token must be verified and accepted, and a wrong one refused,
    # or the runs below would not measure verification.
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${!token_var}" "http://${!addr_var}/get/k1")
    [[ $code == 200 ]] || die "$name: GET with the token answered $code"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer x${!token_var}" "http://${!addr_var}/get/k1")
    [[ $code == 401 ]] || die "$name: GET with a wrong token answered $code, not 401"
  fi
done

# auth_wrk OUT URL TOKEN: run_wrk of GETs of existing keys, with TOKEN
# (if any) as the bearer token.
auth_wrk() {
  wrk_headers=()
  if [[ -n $3 ]]; then wrk_headers=(-H "Authorization: Bearer $3"); fi
  run_wrk "$1" "$2" get_existing.lua keepalive "$KEYS"
}

for name in none file jwt; do
  addr_var="ADDR_$name" token_var="TOKEN_$name"
  auth_wrk "$tmp/warmup-$name.out" "http://${!addr_var}" "${!token_var}"
done
log "warmed up every instance (one run of GETs each, not counted)"

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
# none file jwt jwt file none, BLOCKS times, so a steady drift of the
# machine hits every side alike.
sides=()
for ((i = 0; i < BLOCKS; i++)); do sides+=(none file jwt jwt file none); done
declare -A runs=()
for k in none file jwt; do runs[${k}_rps]="" runs[${k}_p50]="" runs[${k}_p99]=""; done
warnings=()
step=0
for side in "${sides[@]}"; do
  step=$((step + 1))
  addr_var="ADDR_$side" token_var="TOKEN_$side" pid_var="PID_$side"
  auth_wrk "$tmp/wrk-$step.out" "http://${!addr_var}" "${!token_var}"
  kill -0 "${!pid_var}" 2>/dev/null || { tail -n 20 "$tmp/$side.log" >&2; die "$side is no longer running"; }
  requests=$(field "$line" requests) rps=$(field "$line" rps) status=$(field "$line" status)
  sockerr=$(($(field "$line" connect) + $(field "$line" read) + $(field "$line" write) + $(field "$line" timeout)))
  log "[$step/${#sides[@]}] GET, $side: $rps req/s, p50 $(field "$line" p50_us)us, p99 $(field "$line" p99_us)us"
  [[ $requests -gt 0 ]] || die "$side: no request completed"
  if [[ $status -ne 0 ]]; then warnings+=("$side: $status of $requests answers were not 2xx"); fi
  if [[ $sockerr -ne 0 ]]; then warnings+=("$side: $sockerr socket errors ($line)"); fi
  runs[${side}_rps]+=" $rps"
  runs[${side}_p50]+=" $(field "$line" p50_us)"
  runs[${side}_p99]+=" $(field "$line" p99_us)"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

none_rps=$(median "${runs[none_rps]}")
row() {
  local label=$1 side=$2 target=$3
  awk -v label="$label" -v target="$target" -v r="$(median "${runs[${side}_rps]}")" -v n="$none_rps" \
    -v m="$(mean "${runs[${side}_rps]}")" -v nm="$(mean "${runs[none_rps]}")" \
    -v p50="$(median "${runs[${side}_p50]}")" -v p99="$(median "${runs[${side}_p99]}")" 'BEGIN {
      printf "| %s | %.0f | %.2f | %.2f | %s | %.2f ms | %.2f ms |\n",
        label, r, (n > 0 ? r / n : 0), (nm > 0 ? m / nm : 0), target, p50 / 1000, p99 / 1000
    }'
}
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
report() {
  echo "## rendezvous: GET with a bearer token against GET without authentication"
  echo
  echo "- machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr), $(go version | sed 's/^go version //')"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load average before the runs $load_before, after $load_after"
  echo "- wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'): $THREADS threads, $CONNS keep-alive connections, $DURATION per run, on the same machine as the server (loopback)"
  echo "- three servers \`--data '' --rate off --max-keys 2000000\`: no auth; \`--auth-file\` (one token); \`--jwt-secret-file\` (one HS256 token, sub and grants claims); the last two with \`--anonymous rw:\` so the loader preloads"
  echo "- runs in the order none, file, jwt, jwt, file, none, $BLOCKS time(s); figures are the median of each side's $((2 * BLOCKS)) runs"
  echo "- data: $KEYS keys preloaded (200-byte values); GETs uniformly random over them, each with the side's token"
  echo "- ratio = side req/s / no-auth req/s (medians); ratio of means: the same from each side's mean"
  echo
  echo "| scenario | req/s | ratio | ratio of means | target | p50 | p99 |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  row "GET, no auth" none "-"
  row "GET, token file" file "≥ 0.95"
  row "GET, JWT (HS256)" jwt "≥ 0.90"
  if [[ ${#warnings[@]} -gt 0 ]]; then
    echo
    echo "Warnings:"
    printf -- '- %s\n' "${warnings[@]}"
  fi
}

mkdir -p "$root/bench/results"
report | tee "$root/bench/results/auth.md"
log "written to bench/results/auth.md"
