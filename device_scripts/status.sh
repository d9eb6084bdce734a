#!/system/bin/sh
# Progress of a measurement job, for the host to follow in one round trip.
# Usage: sh status.sh JOB_DIR SEEN
# Prints the names in JOB_DIR/done after the first SEEN lines, then one "state=" line:
# finished, error:<reason>, running (the loop's process is alive) or stopped (it is gone: restart it).
job=$1
seen=$2
[ -f "$job/done" ] && tail -n "+$((seen + 1))" "$job/done"
if [ -f "$job/finished" ]; then
  echo "state=finished"
elif [ -f "$job/error" ]; then
  echo "state=error:$(head -n 1 "$job/error")"
elif pid=$(cat "$job/pid" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  echo "state=running"
else
  echo "state=stopped"
fi
