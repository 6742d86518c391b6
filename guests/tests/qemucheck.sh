#!/bin/sh
# Usage: qemucheck.sh BUILD EXPECTED. Each line of EXPECTED is run twice under QEMU (TCG):
#   pvh:   -kernel BUILD/NAME.elf                       (32-bit PVH entry)
#   e64:   -kernel BUILD/tests/direct64.elf + -device loader,file=BUILD/NAME.elf  (64-bit e_entry)
# and the host status and output are compared. Exits 1 on any FAIL.
build=$1; fails=0; passes=0
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-check: qemu-system-x86_64 not installed"; exit 1; }
q() {
	timeout 300 qemu-system-x86_64 -machine q35,accel=tcg -m 512M -display none -serial none \
		-no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 -debugcon stdio "$@" 2>&1
}
while IFS='|' read -r guest args status text; do
	case $guest in ''|\#*) continue ;; esac
	set -- $guest                    # NAME [--smp N]
	guest=$1; smp=1
	[ "$2" = "--smp" ] && smp=$3
	img=$build/$guest.elf
	entry=$(readelf -h "$img" | awk '/Entry point/ {print $4}')
	for how in pvh e64; do
		if [ $how = pvh ]; then
			out=$(q -smp "$smp" -kernel "$img" -append "console=e9 $args"); rc=$?
		else
			out=$(q -smp "$smp" -kernel "$build/tests/direct64.elf" -device loader,file="$img" \
				-append "console=e9 entry=$entry $args"); rc=$?
		fi
		if [ "$rc" = "$status" ] && printf '%s\n' "$out" | grep -qF -- "$text"; then
			echo "PASS $how $guest -smp $smp $args"; passes=$((passes + 1))
		else
			echo "FAIL $how $guest $args: status $rc (want $status), output:"
			printf '%s\n' "$out" | sed 's/^/    /'; fails=$((fails + 1))
		fi
	done
done < "$2"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
