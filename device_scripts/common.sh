# Functions shared by the device scripts: what the phone is, which cores are big, how hot it is.
# POSIX sh only (phones run toybox + mksh); sourced, never run.

# CPU numbers this kernel knows, one per line.
cpus() {
  for dir in /sys/devices/system/cpu/cpu[0-9]*; do
    [ -d "$dir" ] && echo "${dir##*cpu}"
  done | sort -n
}

cpu_value() {  # cpu_value N FILE: one cpufreq value of core N, "unknown" when unreadable
  value=$(cat "/sys/devices/system/cpu/cpu$1/cpufreq/$2" 2>/dev/null) || value=
  echo "${value:-unknown}"
}

# Hex affinity mask of the fastest cores: every core whose cpuinfo_max_freq is the highest, widened
# to the next fastest ones until it holds at least $1 cores (the benchmark's thread count).
big_mask() {
  want=$1
  ranked=$(for n in $(cpus); do echo "$(cpu_value "$n" cpuinfo_max_freq | sed 's/unknown/0/') $n"; done | sort -k1,1nr -k2,2nr)
  top=$(echo "$ranked" | head -n 1 | cut -d' ' -f1)
  mask=0
  count=0
  for n in $(echo "$ranked" | while read -r freq core; do
               if [ "$freq" = "$top" ] || [ "$count" -lt "$want" ]; then echo "$core"; fi
               count=$((count + 1))
             done); do
    mask=$((mask | (1 << n)))
  done
  printf '%x\n' "$mask"
}

mask_cores() {  # the core numbers of hex mask $1, one per line
  mask=$((0x$1))
  for n in $(cpus); do
    [ $(((mask >> n) & 1)) -eq 1 ] && echo "$n"
  done
}

# Android's thermal status (0 none, 1 light, 2 moderate, 3 severe, ... 6 shutdown), "unknown" without dumpsys.
thermal_status() {
  status=$(dumpsys thermalservice 2>/dev/null | sed -n 's/^Thermal Status: *\([0-9][0-9]*\).*/\1/p' | head -n 1)
  echo "${status:-unknown}"
}

# Hottest thermal zone in millidegrees Celsius.
max_temp() {
  cat /sys/class/thermal/thermal_zone*/temp 2>/dev/null | sort -n | tail -n 1 | grep . || echo unknown
}

# Exit 0 when a core of mask $1 is capped below its hardware maximum: the kernel's thermal
# governor lowers scaling_max_freq when the phone throttles.
throttled() {
  for n in $(mask_cores "$1"); do
    cap=$(cpu_value "$n" scaling_max_freq)
    top=$(cpu_value "$n" cpuinfo_max_freq)
    [ "$cap" != unknown ] && [ "$top" != unknown ] && [ "$cap" -lt "$top" ] && return 0
  done
  return 1
}

battery() {  # "level=<percent> charging=<0|1>" from dumpsys battery
  dumpsys battery 2>/dev/null | awk '
    /^ *level:/ { level = $2 }
    /powered: true/ { charging = 1 }
    END { printf "level=%s charging=%d\n", (level == "" ? "unknown" : level), charging }'
}

# One line describing the state a measurement ran in, for the mask $1.
conditions() {
  cur=
  cap=
  for n in $(mask_cores "$1"); do
    cur="$cur${cur:+,}$(cpu_value "$n" scaling_cur_freq)"
    cap="$cap${cap:+,}$(cpu_value "$n" scaling_max_freq)"
  done
  echo "thermal=$(thermal_status) temp=$(max_temp) cur_khz=$cur cap_khz=$cap $(battery)"
}
