#!/system/bin/sh
# What a phone is, as key=value lines: the identity and hardware that go into provenance.
# Usage: sh device_info.sh THREADS   (THREADS decides how many fast cores the affinity mask holds)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

prop() { getprop "$1" 2>/dev/null; }

echo "model=$(prop ro.product.model)"
echo "manufacturer=$(prop ro.product.manufacturer)"
soc=$(prop ro.soc.model)
[ -n "$soc" ] || soc=$(prop ro.board.platform)
[ -n "$soc" ] || soc=$(prop ro.hardware)
echo "soc=$soc"
abilist=$(prop ro.product.cpu.abilist)
[ -n "$abilist" ] || abilist=$(prop ro.product.cpu.abi)
echo "abilist=$abilist"
echo "android=$(prop ro.build.version.release)"
echo "sdk=$(prop ro.build.version.sdk)"
echo "cpus=$(cpus | wc -l | tr -d ' ')"
for n in $(cpus); do
  echo "cpu$n=$(cpu_value "$n" cpuinfo_max_freq) $(cpu_value "$n" scaling_governor)"
done
mask=$(big_mask "${1:-1}")
echo "mask=$mask"
echo "conditions=$(conditions "$mask")"
# The GPU: SurfaceFlinger's "GLES: <vendor>, <renderer>, <version>" line, else the EGL driver's name.
gpu=$(dumpsys SurfaceFlinger 2>/dev/null | sed -n 's/^GLES: *//p' | head -n 1)
[ -n "$gpu" ] || gpu=$(prop ro.hardware.egl)
echo "gpu=$gpu"
