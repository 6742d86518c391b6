/* memtest for the Linux guest: the sample memtest's pattern check as a Linux user program (static, no shared
 * libraries), run by the initramfs's /init.
 *   memtest [MIB [SEED]]   fill MIB MiB (default 16) of anonymous memory with a seeded xorshift pattern, verify it
 *                          word by word, print "memtest: OK, N words verified" (exit 0) or the mismatches (exit 1).
 *   hvexit CODE            (the same binary under that name) write CODE to the debug-exit port 0xF4, which ends the
 *                          VM with that status under hv (QEMU's isa-debug-exit returns (CODE<<1)|1), then, if the
 *                          port has no device, power off through the kernel.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <unistd.h>

#define MIB (1ul << 20)

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static int hvexit(int argc, char **argv)
{
	int code = argc > 1 ? atoi(argv[1]) : 0;
	sync();
	if (ioperm(0xF4, 1, 1) == 0)
		outb((unsigned char)code, 0xF4);
	else
		fprintf(stderr, "hvexit: ioperm(0xf4): %s\n", strerror(errno));
	/* Still running: no debug-exit device. Power off (status lost). */
	reboot(RB_POWER_OFF);
	return code;
}

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	if (strcmp(name, "hvexit") == 0)
		return hvexit(argc, argv);

	unsigned long mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 16;
	uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x9E3779B97F4A7C15ull;
	if (!seed)
		seed = 1;                            /* xorshift must not start at zero */
	size_t bytes = mib * MIB;
	volatile uint64_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("memtest: cannot map %lu MiB: %s\n", mib, strerror(errno));
		return 2;
	}

	printf("memtest: %lu MiB of anonymous memory at %p\n", mib, (void *)p);
	fflush(stdout);
	size_t words = bytes / 8;
	uint64_t s = seed, sum = 0;
	for (size_t i = 0; i < words; i++) {
		uint64_t v = xorshift64(&s);
		p[i] = v;
		sum = (sum ^ v) * 0x100000001B3ull + i;
	}

	s = seed;
	uint64_t bad = 0, check = 0;
	for (size_t i = 0; i < words; i++) {
		uint64_t want = xorshift64(&s);
		uint64_t got = p[i];
		check = (check ^ got) * 0x100000001B3ull + i;
		if (got != want && bad++ < 8)
			printf("memtest: mismatch at word %zu: got 0x%016llx want 0x%016llx\n", i,
			       (unsigned long long)got, (unsigned long long)want);
	}

	printf("memtest: checksum 0x%016llx\n", (unsigned long long)check);
	if (bad || check != sum) {
		printf("memtest: FAIL, %llu bad words\n", (unsigned long long)bad);
		return 1;
	}
	printf("memtest: OK, %zu words verified\n", words);
	return 0;
}
