#!/bin/sh
# The translating tier's threshold curve: every guest below under `hv run --jit-threshold T` for each threshold T,
# REPEAT times each (default 3; the run with the least guest time is kept), as one Markdown table:
#   guest | threshold | guest time (ms) | MIPS | blocks compiled | compile time (ms) | µs per block | share in compiled code
# "guest time" is the report's `time` row (guest code from PVH entry to exit: boot, compilation and the run; not
# hv's own start-up). Usage, from the repository root after `dotnet build -c Release`:
#   bench/jit-threshold-sweep.sh [REPEAT] [THRESHOLDS...]
#   bench/jit-threshold-sweep.sh 3 1 2 5 10 20 50 100 200 500 1000     # the default
# HV overrides the hv binary (default src/Vmm/bin/Release/net10.0/hv). The machine should be quiet: the load average
# is printed first.
set -eu
hv=${HV:-src/Vmm/bin/Release/net10.0/hv}
[ -x "$hv" ] || { echo "jit-threshold-sweep: $hv not built (dotnet build -c Release)" >&2; exit 1; }
repeat=${1:-3}
[ $# -gt 0 ] && shift
thresholds=${*:-1 2 5 10 20 50 100 200 500 1000}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, repeat $repeat (best kept)"
echo
echo "| guest | threshold | guest time (ms) | MIPS | blocks compiled | compile (ms) | µs per block | in compiled code |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for guest in "sieve.elf --cmdline n=10000000" "memtest.elf --cmdline mib=64 -m 256M" "pagetables.elf" "hello.elf"; do
	for t in $thresholds; do
		best=
		i=0
		while [ $i -lt "$repeat" ]; do
			i=$((i + 1))
			# shellcheck disable=SC2086 # $guest is the image and its options
			row=$("$hv" run guests/build/$guest --plain --jit-threshold "$t" | awk '
				$1 == "time" { gsub(",", "", $2); time = $2 }
				$1 == "MIPS" { gsub(",", "", $2); mips = $2 }
				$1 == "tier" {
					share = $3 " " $4
					for (f = 1; f <= NF; f++) {
						if ($(f + 1) == "blocks" && $(f + 2) == "compiled") { gsub(",", "", $f); blocks = $f }
						if ($(f + 1) == "ms," || ($(f + 1) == "ms" && $(f - 1) == "in")) { gsub(",", "", $f); compile = $f }
						if ($(f + 1) == "µs") { gsub(",", "", $f); per = $f }
					}
				}
				END { printf "%s|%s|%s|%s|%s|%s", time, mips, blocks, compile, (per == "" ? "-" : per), share }')
			if [ -z "$best" ] || [ "$(echo "$row" | cut -d'|' -f1 | awk -v b="$(echo "$best" | cut -d'|' -f1)" '{ print ($1 < b) }')" = 1 ]; then
				best=$row
			fi
		done
		echo "$best" | awk -F'|' -v g="${guest%% *}" -v t="$t" '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", g, t, $1, $2, $3, $4, $5, $6 }'
	done
done
