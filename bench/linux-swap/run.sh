#!/bin/sh
# Linux's own swap-out and swap-in per page beside plain file I/O of the same pages, paired per round (the figures
# `hv bench swap-out|swap-in` gives for hv): bench/linux-swap/run.sh [ROUNDS]. Needs root, gcc, swapon and a memory
# cgroup (v1 or v2): it adds a 512 MiB swap file in the temp folder (removed, with swapoff, at the end), runs the
# measurement in a cgroup of its own (removed at the end) and prints two lines. Leaves an existing swap set-up alone.
set -eu
rounds=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "linux-swap: needs root (swapon, cgroups)" >&2; exit 1; }
command -v gcc >/dev/null || { echo "linux-swap: needs gcc" >&2; exit 1; }
tmp=$(mktemp -d)
swapfile=$tmp/swap
cg=
cleanup() {
	swapoff "$swapfile" 2>/dev/null || true
	[ -n "$cg" ] && { cat "$cg/cgroup.procs" 2>/dev/null | while read -r pid; do echo "$pid" > "$(dirname "$cg")/cgroup.procs" 2>/dev/null || true; done; rmdir "$cg" 2>/dev/null || true; }
	rm -rf "$tmp"
}
trap cleanup EXIT
gcc -O2 -o "$tmp/linux-swap" "$here/linux-swap.c"
fallocate -l 512M "$swapfile" && chmod 600 "$swapfile" && mkswap "$swapfile" >/dev/null && swapon "$swapfile"
if [ -d /sys/fs/cgroup/memory ] && [ -f /sys/fs/cgroup/memory/tasks ]; then
	cg=/sys/fs/cgroup/memory/hv-linux-swap-$$; mkdir "$cg"; reclaim=$cg/memory.force_empty; tasks=$cg/tasks
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	cg=/sys/fs/cgroup/hv-linux-swap-$$; mkdir "$cg"; reclaim=$cg/memory.reclaim; tasks=$cg/cgroup.procs
else
	echo "linux-swap: no memory cgroup found" >&2; exit 1
fi
echo "$(uname -sr), page-cluster $(cat /proc/sys/vm/page-cluster), swap file on $(df --output=source "$tmp" | tail -1)"
sh -c "echo \$\$ > '$tasks'; exec '$tmp/linux-swap' '$rounds' '$reclaim' '$tmp/plain'"
