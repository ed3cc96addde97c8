#!/usr/bin/env bash
# The Redis protocol against Redis: redis-benchmark's SET and GET against
# rendezvous (--rate off, journal --fsync everysec), against Debian's
# redis-server (--appendonly yes --appendfsync everysec) and against the Go
# ceiling (bench/respceiling: a map behind a goroutine per connection),
# alternated in one run, at -P 1 and -P 16; then memory per key with
# 1,000,000 keys (our live heap against Redis's used_memory). See
# bench/README.md.
#
#   bench/resp.sh          # 2 blocks of 6 runs per row, about 2 minutes
#   bench/resp.sh quick    # 1 block, no memory measurement, about 1 minute
#
# Environment: REQUESTS (redis-benchmark -n, 200000), CLIENTS (-c, 50),
# BLOCKS (blocks of six runs per row, 2; 1 for quick), MEMKEYS (keys for
# the memory measurement, 1000000; 0 skips it), PIN (1: every server on
# CPU 0 and redis-benchmark on CPU 1, with taskset, so that the load
# generator and the server under test never take each other's core; 0:
# wherever the kernel puts them; default 1 where taskset exists and there
# are at least two CPUs, else 0), TLS (1: every server serves TLS only,
# with one self-signed certificate from bench/tlscert, and redis-benchmark
# connects with --tls; no memory measurement; default 0).
#
# It prints the machine and two markdown tables, and writes them to
# bench/results/resp.md. Every process it starts is stopped on exit. Only
# 127.0.0.1 is ever contacted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-}" in
  quick)
    BLOCKS=${BLOCKS:-1}
    MEMKEYS=${MEMKEYS:-0}
    ;;
  "" | full) ;;
  *) echo "usage: bench/resp.sh [quick]" >&2; exit 2 ;;
esac
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
BLOCKS=${BLOCKS:-2}
MEMKEYS=${MEMKEYS:-1000000}

BENCH_NAME=resp
# shellcheck source=bench/lib.sh
source bench/lib.sh

[[ $BLOCKS =~ ^[0-9]+$ && $BLOCKS -gt 0 && $BLOCKS -le 10 ]] || die "BLOCKS=$BLOCKS: want 1..10"
[[ $MEMKEYS =~ ^[0-9]+$ ]] || die "MEMKEYS=$MEMKEYS: want a number of keys"
if [[ -z ${PIN:-} ]]; then
  PIN=0
  if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then PIN=1; fi
fi
[[ $PIN == 0 || $PIN == 1 ]] || die "PIN=$PIN: want 0 or 1"
TLS=${TLS:-0}
[[ $TLS == 0 || $TLS == 1 ]] || die "TLS=$TLS: want 0 or 1"
if [[ $TLS == 1 ]]; then MEMKEYS=0; fi
if [[ $PIN == 1 ]]; then
  command -v taskset >/dev/null || die "PIN=1 needs taskset (util-linux)"
  [[ $(nproc) -ge 2 ]] || die "PIN=1 needs two CPUs, this machine has $(nproc)"
  # Go sizes GOMAXPROCS from the CPUs it may run on: one here, as
  # redis-server's one thread of commands.
  on_server=(taskset -c 0)
  on_client=(taskset -c 1)
  layout="servers on CPU 0, redis-benchmark on CPU 1 (taskset)"
else
  on_server=()
  on_client=()
  layout="not pinned: servers and redis-benchmark share the $(nproc) CPUs"
fi
command -v go >/dev/null || die "go is not on PATH"
command -v curl >/dev/null || die "curl is missing (it reads the live heap)"
if ! command -v redis-benchmark >/dev/null || ! command -v redis-server >/dev/null; then
  log "installing redis-tools and redis-server from Debian"
  sudo=""
  if [[ $EUID -ne 0 ]] && command -v sudo >/dev/null; then sudo=sudo; fi
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-tools redis-server; } >&2
fi
command -v redis-benchmark >/dev/null || die "could not install redis-benchmark"

log "building rendezvous and bench/respceiling into $tmp"
go build -o "$tmp/rendezvous" .
go build -o "$tmp/respceiling" ./bench/respceiling

# With TLS=1 each server gets the same certificate, and every client trusts
# it: cli is how redis-cli and redis-benchmark reach a server.
ours_tls=() ceiling_tls=() redis_listen=() cli=()
if [[ $TLS == 1 ]]; then
  go run ./bench/tlscert -dir "$tmp"
  ours_tls=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem")
  ceiling_tls=(-tls-cert "$tmp/cert.pem" -tls-key "$tmp/key.pem")
  cli=(--tls --cacert "$tmp/cert.pem")
fi

# ours: the API address from the listening line, the Redis one and the
# profiling one (for the live heap) from theirs.
start_server "$tmp/ours.log" "${on_server[@]}" "$tmp/rendezvous" --addr 127.0.0.1:0 --resp-addr 127.0.0.1:0 --pprof-addr 127.0.0.1:0 \
  --data "$tmp/ours.db" --fsync everysec --rate off --max-keys 2000000 "${ours_tls[@]}"
PID_ours=$server_pid
line_addr() { grep -o -m1 "msg=\"$1 listening\" addr=[^ ]*" "$tmp/ours.log" | sed 's/.*addr=//'; }
RESP_ours=$(line_addr resp)
PPROF_ours=$(line_addr pprof)
[[ $RESP_ours == 127.0.0.1:* && $PPROF_ours == 127.0.0.1:* ]] || die "no resp or pprof address in the log"
PORT_ours=${RESP_ours##*:}

start_server "$tmp/ceiling.log" "${on_server[@]}" "$tmp/respceiling" -addr 127.0.0.1:0 "${ceiling_tls[@]}"
PORT_ceiling=${server_addr##*:}

# redis: a free loopback port, a folder of its own for the AOF.
PORT_redis=""
for p in $(seq 16379 16479); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT_redis=$p; break; fi
done
[[ -n $PORT_redis ]] || die "no free port for redis-server"
mkdir -p "$tmp/redis"
redis_listen=(--port "$PORT_redis")
if [[ $TLS == 1 ]]; then
  redis_listen=(--port 0 --tls-port "$PORT_redis" --tls-cert-file "$tmp/cert.pem" --tls-key-file "$tmp/key.pem"
    --tls-ca-cert-file "$tmp/cert.pem" --tls-auth-clients no)
fi
"${on_server[@]}" redis-server --bind 127.0.0.1 "${redis_listen[@]}" --dir "$tmp/redis" --appendonly yes --appendfsync everysec \
  --daemonize no --logfile "$tmp/redis.log" &
PID_redis=$!
pids+=("$PID_redis")
for _ in $(seq 100); do
  if redis-cli "${cli[@]}" -p "$PORT_redis" ping >/dev/null 2>&1; then break; fi
  sleep 0.1
done
[[ $(redis-cli "${cli[@]}" -p "$PORT_redis" ping) == PONG ]] || die "redis-server did not start: $(cat "$tmp/redis.log")"
[[ $(redis-cli "${cli[@]}" -p "$PORT_ours" ping) == PONG ]] || die "rendezvous does not answer PING on $RESP_ours"
[[ $(redis-cli "${cli[@]}" -p "$PORT_ceiling" ping) == PONG ]] || die "respceiling does not answer PING"

# bench NAME P: sets set_rps and get_rps from one redis-benchmark run.
bench() {
  local port_var="PORT_$1" out
  out=$(run timeout 300 "${on_client[@]}" redis-benchmark "${cli[@]}" -h 127.0.0.1 -p "${!port_var}" -t set,get -n "$REQUESTS" -c "$CLIENTS" -P "$2" -q --csv) ||
    die "redis-benchmark against $1 failed: $out"
  set_rps=$(awk -F'"' '$2 == "SET" {print $4}' <<<"$out")
  get_rps=$(awk -F'"' '$2 == "GET" {print $4}' <<<"$out")
  [[ -n $set_rps && -n $get_rps ]] || die "unexpected redis-benchmark output: $out"
}

declare -A runs
for P in 1 16; do
  # Not counted: the first runs after start are the slowest.
  bench ours "$P"
  bench redis "$P"
  bench ceiling "$P"
  for _ in $(seq "$BLOCKS"); do
    for side in ours redis ceiling ceiling redis ours; do
      bench "$side" "$P"
      runs[$side,$P,SET]+="$set_rps "
      runs[$side,$P,GET]+="$get_rps "
      log "-P $P $side: SET $set_rps GET $get_rps"
    done
  done
done

# heap_ours: our live heap after a collection, in bytes.
heap_ours() {
  curl -sf "http://$PPROF_ours/debug/pprof/heap?gc=1" >/dev/null
  curl -sf "http://$PPROF_ours/debug/vars" | grep -o '"HeapAlloc":[0-9]*' | head -n1 | cut -d: -f2
}
used_redis() { redis-cli "${cli[@]}" -p "$PORT_redis" info memory | tr -d '\r' | sed -n 's/^used_memory://p'; }

mem_rows=""
if [[ $MEMKEYS -gt 0 ]]; then
  log "loading $MEMKEYS keys into each (16-byte keys, 16-byte values)"
  redis-cli "${cli[@]}" -p "$PORT_redis" flushall >/dev/null
  before_ours=$(heap_ours)
  before_redis=$(used_redis)
  for side in ours redis; do
    port_var="PORT_$side"
    out=$(awk -v n="$MEMKEYS" 'BEGIN { for (i = 0; i < n; i++) { k = sprintf("memkey:%09d", i); v = sprintf("value:%010d", i);
      printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v } }' |
      "${on_client[@]}" redis-cli "${cli[@]}" -p "${!port_var}" --pipe 2>&1) || die "loading $side failed: $out"
    [[ $out == *"errors: 0, replies: $MEMKEYS"* ]] || die "loading $side: $out"
  done
  keys_ours=$(redis-cli "${cli[@]}" -p "$PORT_ours" dbsize)
  keys_redis=$(redis-cli "${cli[@]}" -p "$PORT_redis" dbsize)
  after_ours=$(heap_ours)
  after_redis=$(used_redis)
  per_ours=$(( (after_ours - before_ours) / MEMKEYS ))
  per_redis=$(( (after_redis - before_redis) / MEMKEYS ))
  mem_rows="| rendezvous (live heap after GC) | $keys_ours | $before_ours | $after_ours | $per_ours | $(awk -v a="$per_ours" -v b="$per_redis" 'BEGIN {printf "%.2f", a / b}') |
| redis-server (used_memory) | $keys_redis | $before_redis | $after_redis | $per_redis | 1.00 |"
fi

mkdir -p bench/results
{
  cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)
  echo "## Redis protocol: rendezvous against redis-server"
  echo
  echo "- machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr), $(go version | sed 's/^go version //'), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- rendezvous: --rate off --data FILE --fsync everysec; redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'): --appendonly yes --appendfsync everysec"
  echo "- Go ceiling: bench/respceiling (a map under one lock, a goroutine per connection, nothing else)"
  echo "- layout: $layout"
  if [[ $TLS == 1 ]]; then echo "- TLS: every server serves TLS only (one self-signed ECDSA P-256 certificate), redis-benchmark --tls"; fi
  echo "- redis-benchmark -t set,get -n $REQUESTS -c $CLIENTS -P N -q, on loopback; $BLOCKS block(s) of runs in the order ours, redis, ceiling, ceiling, redis, ours per row, after one uncounted run of each"
  echo "- req/s: median of the runs (all listed); ratio: ours / redis, and the ceiling's / redis"
  echo
  echo "| -P | test | rendezvous req/s | redis req/s | ratio | Go ceiling req/s | ceiling ratio | rendezvous runs | redis runs | ceiling runs |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for P in 1 16; do
    for t in SET GET; do
      o=$(median "${runs[ours,$P,$t]}")
      r=$(median "${runs[redis,$P,$t]}")
      g=$(median "${runs[ceiling,$P,$t]}")
      echo "| $P | $t | $o | $r | $(awk -v a="$o" -v b="$r" 'BEGIN {printf "%.2f", a / b}') | $g | $(awk -v a="$g" -v b="$r" 'BEGIN {printf "%.2f", a / b}') | ${runs[ours,$P,$t]% } | ${runs[redis,$P,$t]% } | ${runs[ceiling,$P,$t]% } |"
    done
  done
  if [[ -n $mem_rows ]]; then
    echo
    echo "Memory with $MEMKEYS keys (\`memkey:%09d\` → \`value:%010d\`, 16 bytes each), loaded with redis-cli --pipe:"
    echo
    echo "| server | keys | bytes before | bytes after | bytes per key | ratio |"
    echo "|---|---|---|---|---|---|"
    echo "$mem_rows"
  fi
} | tee bench/results/resp.md
