#!/system/bin/sh
# The measurement loop, run ON the phone as a detached job so that it survives a loose cable.
#
# Usage: sh measure.sh JOB_DIR RUN
# JOB_DIR/config  key=value lines: binary, models (folder of <sha256>.tflite), results (folder of
#                 <sha256>.txt), lock (the phone's lock folder), mask (hex affinity mask),
#                 cool_status, cool_timeout, cool_poll, pause
# JOB_DIR/flags   benchmark_model flags, one per line (everything but --graph)
# JOB_DIR/models  the models to measure, one sha256 per line
# RUN             this start's name: its progress goes to JOB_DIR/runs/RUN/ (pid, done, error,
#                 finished), so a host never mistakes an earlier loop's listing or end for this one's
#
# For each model without a result file, or whose only result is a failure (measured again once,
# marked latprof-retry=1: the phone's low-memory killer or a hot phone can fail a model that
# runs the next time): wait while the phone throttles, run benchmark_model
# pinned to the mask, write its output with the conditions before and after to a temporary file,
# rename it into place, then append the name to the run's done list (every model of the job is
# listed once this loop has dealt with it, measured now or before, so the host reads each result
# only after this loop has retried it if it had to).  One loop measures at a time per
# phone, whatever its settings or results folder (two benchmark_models at once would slow each
# other); a model that already has a result file is never measured again, so a restarted job,
# or another job, finishes the work exactly once.
job=$1
run_id=$2
case $run_id in
  ''|*[!0-9a-f]*) echo "bad run name: $run_id" >&2; exit 1 ;;
esac
run="$job/runs/$run_id"

fail() {  # record why the loop stopped where the host looks for it, then stop
  echo "$*" > "$run/error.tmp" && mv "$run/error.tmp" "$run/error"
  echo "$*" >&2
  exit 1
}

echo $$ > "$run/pid" || { echo "cannot write to $run: is the phone's storage full?" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

conf() { sed -n "s/^$1=//p" "$job/config" | head -n 1; }
binary=$(conf binary)
models=$(conf models)
results=$(conf results)
mask=$(conf mask)
cool_status=$(conf cool_status)
cool_timeout=$(conf cool_timeout)
cool_poll=$(conf cool_poll)
pause=$(conf pause)
lock=$(conf lock)

rm -f "$job/finished"  # the job runs to its end again: it is not done with until this loop is
mkdir -p "$results" || fail "cannot create $results"
[ -n "$lock" ] || fail "$job/config names no lock"

# Take the phone's lock; wait while another live loop holds it, break it when its owner is gone
# (or never wrote its pid: a loop killed between taking the lock and naming itself).  While it
# waits, the run says so (status.sh then shows the owner's progress, so the host does not take a
# wait behind a long job for a stuck phone); the owner names its run in the lock.
touch "$run/waiting"
unnamed=0
while ! mkdir "$lock" 2>/dev/null; do
  owner=$(cat "$lock/pid" 2>/dev/null)
  if [ -z "$owner" ]; then unnamed=$((unnamed + 1)); else unnamed=0; fi
  if { [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; } || [ "$unnamed" -gt 5 ]; then
    rm -rf "$lock"
  else
    sleep 1
  fi
done
echo $$ > "$lock/pid"
echo "$run" > "$lock/run"
rm -f "$run/waiting"
trap 'rm -rf "$lock"' EXIT
trap 'exit 1' HUP INT TERM

set --
while IFS= read -r flag; do
  set -- "$@" "$flag"
done < "$job/flags"

too_hot() {
  status=$(thermal_status)
  if [ "$status" != unknown ] && [ "$status" -ge "$cool_status" ]; then
    return 0
  fi
  throttled "$mask"
}

while IFS= read -r name; do
  case $name in
    ''|*[!0-9a-f]*) fail "bad model name in $job/models: $name" ;;
  esac
  result="$results/$name.txt"
  retry=0
  if [ -f "$result" ] && ! grep -q '^latprof-exit=0$' "$result" && ! grep -q '^latprof-retry=' "$result"; then
    retry=1
  fi
  if [ ! -f "$result" ] || [ "$retry" = 1 ]; then
    waited=0
    while too_hot && [ "$waited" -lt "$cool_timeout" ]; do
      sleep "$cool_poll"
      waited=$((waited + cool_poll))
    done
    tmp="$results/$name.tmp"
    {
      echo "latprof-model=$name"
      echo "latprof-mask=$mask"
      echo "latprof-cooldown=$waited"
      [ "$retry" = 0 ] || echo "latprof-retry=1"
      echo "latprof-before=$(conditions "$mask")"
    } > "$tmp" || fail "cannot write $tmp: is the phone's storage full?"
    taskset "$mask" "$binary" "--graph=$models/$name.tflite" "$@" >> "$tmp" 2>&1
    code=$?
    {
      echo "latprof-exit=$code"
      echo "latprof-after=$(conditions "$mask")"
      echo "latprof-end"
    } >> "$tmp" || fail "cannot write $tmp: is the phone's storage full?"
    mv "$tmp" "$result" || fail "cannot rename $tmp"
    [ "$pause" = 0 ] || sleep "$pause"
  fi
  echo "$name" >> "$run/done" || fail "cannot write $run/done: is the phone's storage full?"
done < "$job/models"
touch "$run/finished" "$job/finished"
