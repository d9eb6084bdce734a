#!/system/bin/sh
# Progress of one run of a measurement job (one start of measure.sh), for the host to follow in
# one round trip.
# Usage: sh status.sh JOB_DIR RUN SEEN
# Prints the names in the run's done list after the first SEEN lines, then one "state=" line:
# finished, error:<reason>, starting (the host made the run's folder, the loop has not named
# itself yet), waiting:<owner's run> <its count of listed names> (alive, behind another loop that
# holds the phone's lock), running (alive, measuring) or stopped (it is gone: start it again).
run="$1/runs/$2"
seen=$3
[ -f "$run/done" ] && tail -n "+$((seen + 1))" "$run/done"
if [ -f "$run/finished" ]; then
  echo "state=finished"
elif [ -f "$run/error" ]; then
  echo "state=error:$(head -n 1 "$run/error")"
elif [ ! -f "$run/pid" ]; then
  echo "state=starting"
elif pid=$(cat "$run/pid" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  if [ -f "$run/waiting" ]; then
    lock=$(sed -n 's/^lock=//p' "$1/config" | head -n 1)
    owner=$(cat "$lock/run" 2>/dev/null)
    echo "state=waiting:$owner $(cat "$owner/done" 2>/dev/null | wc -l)"
  else
    echo "state=running"
  fi
else
  echo "state=stopped"
fi
