#!/usr/bin/env bash
# Fetches the Linux guest's parts from Debian's packages into OUT (default build/linux):
#   OUT/vmlinux   the kernel of linux-image-cloud-amd64, decompressed from its vmlinuz to the ELF (which carries the
#                 PVH note hv boots through)
#   OUT/vmlinuz   the same kernel as Debian ships it, a bzImage (booted through the Linux boot protocol)
#   OUT/busybox   busybox-static's binary, the initramfs's shell and tools
#   OUT/version   the two packages' names and versions
# Needs apt-get and dpkg-deb (Debian or a derivative), and the decompressor the kernel was built with (lz4 for
# Debian 12's, else xz, zstd or gzip). Exits 1 with one line saying what is missing when it cannot.
set -euo pipefail
out=${1:-build/linux}
mkdir -p "$out/deb"
fail() { echo "linux: $*" >&2; exit 1; }

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: the Linux guest is built from Debian's packages"
command -v dpkg-deb >/dev/null 2>&1 || fail "dpkg-deb not found: the Linux guest is built from Debian's packages"

resolve() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
kernel=$(resolve || true)
if [ -z "$kernel" ] && [ "$(id -u)" -eq 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get -qq update >/dev/null 2>&1 || true
  kernel=$(resolve || true)
fi
[ -n "$kernel" ] || fail "apt cannot resolve linux-image-cloud-amd64 (no Debian package index here? run 'apt-get update')"

( cd "$out/deb" && rm -f ./*.deb && apt-get download -qq "$kernel" busybox-static >/dev/null 2>&1 ) ||
  fail "apt-get download $kernel busybox-static failed (no network to Debian's mirrors?)"

rm -rf "$out/deb/kernel" "$out/deb/busybox"
dpkg-deb -x "$out"/deb/linux-image-*.deb "$out/deb/kernel"
dpkg-deb -x "$out"/deb/busybox-static_*.deb "$out/deb/busybox"
cp "$out/deb/busybox/bin/busybox" "$out/busybox"

vmlinuz=$(ls "$out"/deb/kernel/boot/vmlinuz-* | head -1)
cp "$vmlinuz" "$out/vmlinuz"
# The bzImage carries the compressed ELF after its setup code and decompressor: find the first magic of each
# format and decompress from the earliest one that yields an ELF (trailing bytes after the stream are expected).
try() {  # try NAME MAGIC-HEX TOOL...
  local name=$1 magic=$2; shift 2
  command -v "$1" >/dev/null 2>&1 || return 1
  local at
  at=$(LC_ALL=C grep -obUaP "$(echo "$magic" | sed 's/../\\x&/g')" "$vmlinuz" 2>/dev/null | head -1 | cut -d: -f1) || return 1
  [ -n "$at" ] || return 1
  tail -c +$((at + 1)) "$vmlinuz" | "$@" > "$out/vmlinux.tmp" 2>/dev/null || true
  [ "$(head -c 4 "$out/vmlinux.tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || return 1
  mv "$out/vmlinux.tmp" "$out/vmlinux"
  echo "linux: $(basename "$vmlinuz") decompressed with $name from offset $at" >&2
}
try lz4 02214c18 lz4 -dc || try xz fd377a585a00 xz -dc || try zstd 28b52ffd zstd -dc || try gzip 1f8b0800 gzip -dc ||
  fail "cannot decompress $(basename "$vmlinuz"): install the decompressor its kernel was built with (lz4, xz, zstd or gzip)"
rm -f "$out/vmlinux.tmp"

{ echo "$kernel $(dpkg-deb -f "$out"/deb/linux-image-*.deb Version)"
  echo "busybox-static $(dpkg-deb -f "$out"/deb/busybox-static_*.deb Version)"; } > "$out/version"
rm -rf "$out/deb"
