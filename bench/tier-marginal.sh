#!/bin/sh
# Marginal MIPS of a sample guest between two values of one cmdline argument, on hv's interpreter, hv's JIT and
# QEMU TCG, from one shell:
#   bench/tier-marginal.sh [N1] [N2] [REPEAT]        # defaults: sieve.elf, n=10000000 and n=30000000, 3 runs
#   GUEST=pagetables ARG=rounds bench/tier-marginal.sh 100 300 3
# GUEST names guests/build/GUEST.elf (default sieve), ARG the argument that sets the amount of work (default n).
# Each emulator runs ARG=N1 and ARG=N2 REPEAT times, the tiers alternating within each repeat so a change of load
# falls on both; the least time of each is kept and the marginal rate is
# (instructions(N2) - instructions(N1)) / (time(N2) - time(N1)), with instructions counted by hv (QEMU counts none;
# both run the same image). hv's time is its report's guest time; QEMU's is its whole process (start-up, firmware and
# exit cancel in the difference). The figures of TierComparisonBenchmarks, without BenchmarkDotNet; from the
# repository root after `dotnet build -c Release`. HV overrides the hv binary; QEMU=0 skips QEMU. CLOCK=cpu times hv
# by its process's CPU time (user + system, from /usr/bin/time; start-up cancels in the difference, the background
# compiler thread is included) instead of the report's guest time: steadier than wall time on a loaded machine.
set -eu
hv=${HV:-src/Vmm/bin/Release/net10.0/hv}
guest=${GUEST:-sieve}
arg=${ARG:-n}
image=guests/build/$guest.elf
n1=${1:-10000000}; n2=${2:-30000000}; repeat=${3:-3}
[ -x "$hv" ] || { echo "tier-marginal: $hv not built (dotnet build -c Release)" >&2; exit 1; }
[ -f "$image" ] || { echo "tier-marginal: $image not built (make -C guests)" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs; $guest $arg=$n1 and $arg=$n2, best of $repeat, ${CLOCK:-wall} time"
# hv: "instructions ms" of one run; a guest exit code other than 0 is reported on stderr
clock=${CLOCK:-wall}
cpufile=$(mktemp)
hvrun() {
	if [ "$clock" = cpu ]; then
		/usr/bin/time -f "%U %S" -o "$cpufile" "$hv" run "$image" --plain --cmdline "$arg=$2" --tier "$1"
	else
		"$hv" run "$image" --plain --cmdline "$arg=$2" --tier "$1"
	fi | awk -v cpu="$clock" -v cpufile="$cpufile" '$1 == "instructions" { gsub(",", "", $2); i = $2 }
		$1 == "time" { gsub(",", "", $2); t = $2 } $1 == "guest" && $2 == "exit" { code = $4 } END {
		if (code != 0) print "tier-marginal: the guest exited with code " code " (--tier '"$1"', '"$arg=$2"')" > "/dev/stderr"
		if (cpu == "cpu") { close(cpufile); getline line < cpufile; split(line, f, " "); t = (f[1] + f[2]) * 1000 }
		print i, t }'
}
best() { sort -n | head -1; }
i1=$(hvrun jit "$n1" | cut -d' ' -f1); i2=$(hvrun jit "$n2" | cut -d' ' -f1)
echo "instructions (hv, exact under both tiers): $arg=$n1 $i1, $arg=$n2 $i2"
rate() { awk -v i1="$i1" -v i2="$i2" -v t1="$2" -v t2="$3" -v name="$1" 'BEGIN {
	printf "%-12s %s %8.1f ms   %s %8.1f ms   marginal %7.0f MIPS\n", name, "'"$arg=$n1"'", t1, "'"$arg=$n2"'", t2, (t2 > t1 ? (i2 - i1) / ((t2 - t1) * 1000) : 0) }'; }
times=$(mktemp -d); trap 'rm -rf "$times" "$cpufile"' EXIT
for _ in $(seq "$repeat"); do
	for tier in interp jit; do
		hvrun $tier "$n1" | cut -d' ' -f2 >>"$times/$tier.1"
		hvrun $tier "$n2" | cut -d' ' -f2 >>"$times/$tier.2"
	done
done
for tier in interp jit; do
	rate "hv $tier" "$(best <"$times/$tier.1")" "$(best <"$times/$tier.2")"
	echo "             all runs (ms): $arg=$n1 $(tr '\n' ' ' <"$times/$tier.1")  $arg=$n2 $(tr '\n' ' ' <"$times/$tier.2")"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) after hv"
[ "${QEMU:-1}" = 0 ] && exit 0
if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "QEMU TCG     qemu-system-x86_64 is not installed: no QEMU figure (apt-get install qemu-system-x86)"
	exit 0
fi
qemurun() {
	start=$(date +%s%N)
	qemu-system-x86_64 -accel tcg -machine q35 -m 128M -smp 1 -display none -serial none -monitor none -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -debugcon file:/dev/null -kernel "$image" -append "$arg=$1" || true
	echo $((($(date +%s%N) - start) / 1000)) | awk '{ printf "%.1f\n", $1 / 1000 }'
}
t1=$(for _ in $(seq "$repeat"); do qemurun "$n1"; done | best)
t2=$(for _ in $(seq "$repeat"); do qemurun "$n2"; done | best)
rate "QEMU TCG" "$t1" "$t2"
