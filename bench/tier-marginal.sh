#!/bin/sh
# Marginal MIPS of sieve.elf between two arguments, on hv's interpreter, hv's JIT and QEMU TCG, from one shell:
#   bench/tier-marginal.sh [N1] [N2] [REPEAT]        # defaults: 10000000 30000000 3
# Each emulator runs n=N1 and n=N2 REPEAT times; the least time of each is kept and the marginal rate is
# (instructions(N2) - instructions(N1)) / (time(N2) - time(N1)), with instructions counted by hv (QEMU counts none;
# both run the same image). hv's time is its report's guest time; QEMU's is its whole process (start-up, firmware and
# exit cancel in the difference). The figures of TierComparisonBenchmarks, without BenchmarkDotNet; from the
# repository root after `dotnet build -c Release`. HV overrides the hv binary.
set -eu
hv=${HV:-src/Vmm/bin/Release/net10.0/hv}
image=guests/build/sieve.elf
n1=${1:-10000000}; n2=${2:-30000000}; repeat=${3:-3}
[ -x "$hv" ] || { echo "tier-marginal: $hv not built (dotnet build -c Release)" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs; sieve n=$n1 and n=$n2, best of $repeat"
# hv: "instructions ms" of one run
hvrun() { "$hv" run "$image" --plain --cmdline "n=$2" --tier "$1" | awk '$1 == "instructions" { gsub(",", "", $2); i = $2 } $1 == "time" { gsub(",", "", $2); t = $2 } END { print i, t }'; }
best() { sort -n | head -1; }
i1=$(hvrun jit "$n1" | cut -d' ' -f1); i2=$(hvrun jit "$n2" | cut -d' ' -f1)
echo "instructions (hv, exact under both tiers): n=$n1 $i1, n=$n2 $i2"
rate() { awk -v i1="$i1" -v i2="$i2" -v t1="$2" -v t2="$3" -v name="$1" 'BEGIN {
	printf "%-12s n=%s %8.1f ms   n=%s %8.1f ms   marginal %7.0f MIPS\n", name, "'"$n1"'", t1, "'"$n2"'", t2, (t2 > t1 ? (i2 - i1) / ((t2 - t1) * 1000) : 0) }'; }
for tier in interp jit; do
	t1=$(for _ in $(seq "$repeat"); do hvrun $tier "$n1" | cut -d' ' -f2; done | best)
	t2=$(for _ in $(seq "$repeat"); do hvrun $tier "$n2" | cut -d' ' -f2; done | best)
	rate "hv $tier" "$t1" "$t2"
done
if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "QEMU TCG     qemu-system-x86_64 is not installed: no QEMU figure (apt-get install qemu-system-x86)"
	exit 0
fi
qemurun() {
	start=$(date +%s%N)
	qemu-system-x86_64 -accel tcg -machine q35 -m 128M -smp 1 -display none -serial none -monitor none -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -debugcon file:/dev/null -kernel "$image" -append "n=$1" || true
	echo $((($(date +%s%N) - start) / 1000)) | awk '{ printf "%.1f\n", $1 / 1000 }'
}
t1=$(for _ in $(seq "$repeat"); do qemurun "$n1"; done | best)
t2=$(for _ in $(seq "$repeat"); do qemurun "$n2"; done | best)
rate "QEMU TCG" "$t1" "$t2"
