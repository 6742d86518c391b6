#!/bin/sh
# Usage: hostcheck.sh HOSTDIR EXPECTED; runs each line of EXPECTED, prints PASS/FAIL, exits 1 on any FAIL.
dir=$1; fails=0; passes=0
while IFS='|' read -r guest args status text; do
	case $guest in ''|\#*) continue ;; esac
	[ -x "$dir/$guest" ] || { echo "SKIP $guest $args (not built for the host: needs ring 0)"; continue; }
	out=$("$dir/$guest" $args 2>&1); rc=$?
	if [ "$rc" = "$status" ] && printf '%s\n' "$out" | grep -qF -- "$text"; then
		echo "PASS $guest $args"; passes=$((passes + 1))
	else
		echo "FAIL $guest $args: status $rc (want $status), output:"; printf '%s\n' "$out" | sed 's/^/    /'
		fails=$((fails + 1))
	fi
done < "$2"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
