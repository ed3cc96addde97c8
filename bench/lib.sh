# shellcheck shell=bash
# Plumbing shared by the bench scripts: logging, wrk, a clean environment,
# servers started on loopback, and stopping everything on exit. A script
# sets BENCH_NAME (its log prefix), sources this file, and uses $tmp, run,
# start_server and stop_server. Only 127.0.0.1 is ever contacted.

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
log() { echo "$BENCH_NAME: $*" >&2; }

# duration_secs D: wrk's -d in whole seconds, to bound each run with
# timeout(1).
duration_secs() {
  local d=$1
  case $d in
    *ms) echo 1 ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
  esac
}

# wrk_options reads the quick/full argument of a wrk-driven script and sets
# DURATION, BLOCKS, THREADS, CONNS and KEYS from the environment or their
# defaults (quick: shorter runs, one block), refusing values wrk or the
# block loop cannot use. dur_s is DURATION in seconds.
wrk_options() {
  case "${1:-}" in
    quick)
      DURATION=${DURATION:-2s}
      BLOCKS=${BLOCKS:-1}
      ;;
    "" | full) ;;
    *) echo "usage: bench/$(basename "$0") [quick]" >&2; exit 2 ;;
  esac
  DURATION=${DURATION:-3s}
  BLOCKS=${BLOCKS:-2}
  THREADS=${THREADS:-2}
  CONNS=${CONNS:-64}
  KEYS=${KEYS:-100000}
  dur_s=$(duration_secs "$DURATION")
  [[ $dur_s =~ ^[0-9]+$ ]] || die "DURATION=$DURATION: want a wrk duration like 5s or 1m"
  [[ $BLOCKS =~ ^[0-9]+$ && $BLOCKS -gt 0 && $BLOCKS -le 10 ]] || die "BLOCKS=$BLOCKS: want 1..10"
}

# median LIST, mean LIST: of space-separated numbers (0 for none). The
# scripts compare medians: on this shared machine other work only ever
# slows a run, and one run at 60% of its neighbours moved a row's ratio
# by 0.10 (see bench/README.md).
median() {
  tr ' ' '\n' <<<"$1" | grep . | sort -g |
    awk '{a[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.10g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
mean() { awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.3f\n", (NF ? s / NF : 0)}' <<<"$1"; }

# need_tools: wrk, installed from Debian when missing, and timeout(1).
need_tools() {
  if ! command -v wrk >/dev/null; then
    log "installing wrk from Debian"
    local sudo=""
    if [[ $EUID -ne 0 ]] && command -v sudo >/dev/null; then sudo=sudo; fi
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk; } >&2
    command -v wrk >/dev/null || die "could not install wrk"
  fi
  command -v timeout >/dev/null || die "timeout (coreutils) is missing"
}

# The servers' flags must come from the script alone.
for v in $(compgen -e); do
  if [[ $v == RENDEZVOUS_* ]]; then unset "$v"; fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rendezvous-$BENCH_NAME.XXXXXX")
pids=()   # servers still running, stopped on exit
fg_pid="" # the command run is waiting for

# stop_pids PID...: SIGTERM (servers drain and write a final snapshot),
# SIGKILL what is left after 30 s, and reap them.
stop_pids() {
  local pid alive
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 150); do
    alive=0
    for pid in "$@"; do
      if kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [[ $alive == 0 ]] && break
    sleep 0.2
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

cleanup() {
  if [[ -n $fg_pid ]]; then kill -TERM "$fg_pid" 2>/dev/null || true; fi
  stop_pids "${pids[@]}"
  if [[ -n $fg_pid ]]; then wait "$fg_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# A script killed by a signal runs no EXIT trap, so each one that may end
# a run exits instead: HUP (the terminal went away) and PIPE (its output
# piped into a reader that quit, as `| head` does) would otherwise leave
# the servers running.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# run CMD...: runs CMD in the background and waits for it, so that a
# signal to the script is handled at once (bash runs traps only between
# foreground commands) and cleanup can stop CMD too.
run() {
  local rc=0
  "$@" &
  fg_pid=$!
  wait "$fg_pid" || rc=$?
  fg_pid=""
  return "$rc"
}

# start_server LOG CMD...: runs CMD in the background with its output in
# LOG, waits for its `msg=listening addr=HOST:PORT` line, and sets
# server_addr and server_pid.
start_server() {
  local logf=$1; shift
  "$@" >"$logf" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  local line
  for _ in $(seq 200); do
    if line=$(grep -o -m1 'msg=listening addr=[^ ]*' "$logf"); then
      server_addr=${line#msg=listening addr=}
      [[ $server_addr == 127.0.0.1:* ]] || die "$1 listens on $server_addr, not 127.0.0.1"
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      cat "$logf" >&2
      die "server exited before listening: $*"
    fi
    sleep 0.05
  done
  cat "$logf" >&2
  die "server did not log its listening address within 10s: $*"
}

# stop_server PID: stops one server started by start_server.
stop_server() {
  stop_pids "$1"
  local kept=() pid
  for pid in "${pids[@]}"; do
    if [[ $pid != "$1" ]]; then kept+=("$pid"); fi
  done
  pids=("${kept[@]}")
}

# field LINE NAME: the value of NAME=... in a BENCH line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# run_wrk OUT URL SCRIPT CONNMODE [SCRIPT ARGS...]: one wrk run of
# bench/lua/SCRIPT against URL, with wrk_headers (an array of -H options,
# empty unless a script sets it) and, for CONNMODE close, a Connection:
# close header; sets line to wrk's BENCH line. wrk's whole output is in
# OUT.
wrk_headers=()
run_wrk() {
  local out=$1 url=$2 script=$3 conn=$4
  shift 4
  local hdr=("${wrk_headers[@]}")
  if [[ $conn == close ]]; then hdr+=(-H 'Connection: close'); fi
  if ! run timeout --kill-after=5 $((dur_s + 30)) \
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 5s --latency "${hdr[@]}" \
    -s "bench/lua/$script" "$url" -- "$@" >"$out" 2>&1; then
    cat "$out" >&2
    die "wrk failed: $script on $url"
  fi
  line=$(grep -m1 '^BENCH ' "$out") || { cat "$out" >&2; die "no BENCH line from $script"; }
}
