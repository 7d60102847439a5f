#!/usr/bin/env bash
# A Starq worker in bash, with curl and jq.
#
#   STARQ_QUEUE=emails bash worker.sh
#
# It claims jobs with a long-poll, runs them (a batch at a time, each in the background), heart-beats each job's
# lease while it runs, and reports every outcome quoting the lease. The rules it follows, for any language:
# docs/worker-protocol.md. To port it, read it top to bottom: config, HTTP, the work, one job, the loop.
set -u # no -e: a failed request is retried or logged, it does not end the worker

# --- Configuration, from the environment ------------------------------------------------------------------
URL=${STARQ_URL:-http://127.0.0.1:8000}
KEY=${STARQ_API_KEY:-dev-key}
QUEUE=${STARQ_QUEUE:-}
MAX_JOBS=${STARQ_MAX_JOBS:-} # empty: forever
CONCURRENCY=4                # jobs claimed (and run) at once: claim only as many as you can start now
WORKER="bash-${HOSTNAME:-host}-$$" # shown in the dashboard and on each job

log() { echo "[$WORKER] $*" >&2; }
[ -n "$QUEUE" ] || { log "STARQ_QUEUE is not set: name the queue to work on"; exit 2; }
JOBS="$URL/api/v1/queues/$QUEUE/jobs"
TMP=$(mktemp -d) # the claim's answer, each job's error text and lost-lease marker, the key
trap 'rm -rf "$TMP"' EXIT

# --- HTTP ------------------------------------------------------------------------------------------------------
# Every request: the key (from a file, so that it does not show in `ps`), JSON, and the HTTP status printed on a
# last line of its own after the body (000: no answer came: refused, reset or timed out).
printf 'X-API-Key: %s\n' "$KEY" >"$TMP/headers"
CURL=(curl -sS -H @"$TMP/headers" -H 'Content-Type: application/json' -w '\n%{http_code}')

# call METHOD PATH BODY: one request to the API, within 10 s.
call() { "${CURL[@]}" -X "$1" "$JOBS$2" --data-binary "$3" --max-time 10; }

# backoff WHY: pauses while the server is away: 0.5 s doubling up to 10 s, each pause drawn from the upper half
# of that (jitter, so a fleet of workers does not come back in lockstep). In the background, so that a stop
# signal cuts it short (bash runs a trap only between commands, but it does interrupt `wait`).
delay_ms=500
backoff() {
  local pause_ms=$((delay_ms / 2 + RANDOM % (delay_ms / 2 + 1)))
  delay_ms=$((delay_ms * 2 > 10000 ? 10000 : delay_ms * 2))
  log "$1; retrying in $((pause_ms / 1000)).$((pause_ms % 1000 / 100)) s"
  sleep "$((pause_ms / 1000)).$(printf %03d $((pause_ms % 1000)))" &
  wait $! || kill $! 2>/dev/null
}

# --- The work ----------------------------------------------------------------------------------------------------
# work PAYLOAD: prints the job's result (any JSON). To fail the job, print the error on stderr and return non-zero.
work() {
  local payload=$1 n
  sleep "$(jq '(.sleep_ms // 0) / 1000' <<<"$payload")"
  if jq -e 'has("fail")' <<<"$payload" >/dev/null; then
    jq -r .fail <<<"$payload" >&2
    return 1
  fi
  n=$(jq '.n | select(type == "number" and . == floor)' <<<"$payload")
  [ -n "$n" ] || { echo "the payload needs an integer n" >&2; return 1; }
  jq -nc --argjson n "$n" '{squared: ($n * $n), worker: "bash"}'
}

# --- One job: heart-beat while it runs, then report --------------------------------------------------------
# handle_job JOB: runs in the background, one per job of the batch.
handle_job() {
  # Stop signals are the main loop's: the job in hand finishes and is reported even when they are sent to the
  # whole process group (Ctrl-C does that, and so does systemd). Every command started from here inherits this.
  trap '' TERM INT
  local id lease half result error outcome body summary
  # The lease lasts lease_expires_at − claimed_at (two server times: no clock skew). Extend it every half of that.
  # (jq's fromdateiso8601 takes no fraction of a second: the milliseconds are added apart.)
  local fields='def ms: (.[:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber? // 0);
    [.id, .lease_id, ((.lease_expires_at | ms) - (.claimed_at | ms)) / 2000] | @tsv'
  IFS=$'\t' read -r id lease half < <(jq -r "$fields" <<<"$1")
  heartbeat "$id" "$lease" "$half" &
  local beating=$!

  if result=$(work "$(jq -c .payload <<<"$1")" 2>"$TMP/$id.error"); then
    outcome=complete summary=completed
    body=$(jq -nc --arg lease "$lease" --argjson result "$result" '{lease_id: $lease, result: $result}')
  else
    # The error's first line is what the dashboard shows; details may follow after a blank line.
    error=$(<"$TMP/$id.error")
    outcome=fail summary="failed: $error"
    body=$(jq -nc --arg lease "$lease" --arg error "$error" '{lease_id: $lease, error: $error}')
  fi
  kill -USR1 "$beating" 2>/dev/null # stops the heart-beat (TERM is ignored in here)
  # A lost lease means the job is not ours any more (expired and handed to another worker, or deleted).
  [ -e "$TMP/$id.lost" ] || report "$id" "$outcome" "$body" "$summary"
  rm -f "$TMP/$id.error" "$TMP/$id.lost"
}

# heartbeat ID LEASE SECONDS: extends the lease every SECONDS until it gets USR1.
heartbeat() {
  local pause=$3 answer status sleeping=""
  trap 'kill "$sleeping" 2>/dev/null; exit 0' USR1
  while true; do
    sleep "$pause" &
    sleeping=$!
    wait "$sleeping"
    answer=$(call PUT "/$1/extend" "{\"lease_id\": \"$2\"}")
    status=${answer##*$'\n'}
    case $status in
      200) pause=$3 ;;
      404 | 409)
        log "job $1: lease lost ($status ${answer%$'\n'*}); its outcome will not be reported"
        touch "$TMP/$1.lost"
        exit 0
        ;;
      *) # no answer or 5xx: try again soon, while the lease lasts
        log "job $1: extend got $status; trying again in 1 s"
        pause=1
        ;;
    esac
  done
}

# report ID OUTCOME BODY SUMMARY: complete/fail. Repeating a report that quotes the lease is safe, so it is retried
# while there is no answer or a 5xx.
report() {
  local attempt answer status
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    answer=$(call PUT "/$1/$2" "$3")
    status=${answer##*$'\n'}
    case $status in
      200)
        log "job $1: $4"
        return
        ;;
      4??) # 409: the lease moved on to another worker (or this was reported already); 413: result too large.
        log "job $1: $2 refused: $status ${answer%$'\n'*}"
        return
        ;;
    esac
    sleep "$attempt" # 1 s, 2 s, 3 s, ...
  done
  log "job $1: gave up reporting it; its lease will expire and it will run again"
}

# --- The loop: claim, run the batch, repeat --------------------------------------------------------------
# SIGTERM or SIGINT (Ctrl-C): hang up the waiting claim (the server puts back any job it took for it), let the
# jobs in hand finish and be reported, then exit 0.
# The trap hangs up the claim itself: a signal that lands just before the `wait` below (bash runs a trap only
# between commands) would otherwise leave the worker waiting out the whole long-poll.
STOP=0 claiming=""
trap 'STOP=1; [ -z "$claiming" ] || kill "$claiming" 2>/dev/null
  log "stop signal: finishing the jobs in hand, claiming no more"' TERM INT

done_jobs=0
while [ "$STOP" = 0 ]; do
  count=$CONCURRENCY
  if [ -n "$MAX_JOBS" ]; then
    [ "$done_jobs" -lt "$MAX_JOBS" ] || break
    count=$((MAX_JOBS - done_jobs < count ? MAX_JOBS - done_jobs : count))
  fi
  # The long-poll: the server answers as soon as a job is ready, or with no jobs after block_ms. The HTTP
  # timeout must be longer than block_ms. In the background, so that a stop signal interrupts the `wait`.
  "${CURL[@]}" -X POST "$JOBS/claim" --max-time 40 \
    -d "{\"count\": $count, \"block_ms\": 30000, \"worker\": \"$WORKER\"}" >"$TMP/claim" &
  claiming=$!
  [ "$STOP" = 1 ] && kill "$claiming" 2>/dev/null # the signal came while the claim was being started
  wait "$claiming"
  claiming=""
  answer=$(<"$TMP/claim")
  status=${answer##*$'\n'} body=${answer%$'\n'*}
  if [ "$STOP" = 1 ] && [ "$status" != 200 ]; then break; fi
  case $status in
    200) delay_ms=500 ;;
    401)
      log "401 unauthorized: the server refused STARQ_API_KEY; set it to one of the server's STARQ_API_KEYS"
      exit 1
      ;;
    000)
      backoff "claim got no answer"
      continue
      ;;
    *) # 503 (the server's store is away), 404 (no such queue yet), ...: wait and claim again.
      backoff "claim got $status $body"
      continue
      ;;
  esac

  # Run the whole batch, one background job each, then claim again. (A busier worker would claim again as each
  # slot frees up.) `wait` returns early when a stop signal arrives: wait again, the jobs in hand must finish.
  while read -r job; do
    handle_job "$job" &
  done < <(jq -c '.jobs[]' <<<"$body")
  until wait; do :; done
  done_jobs=$((done_jobs + $(jq '.jobs | length' <<<"$body")))
done
log "stopping after $done_jobs job(s)"
