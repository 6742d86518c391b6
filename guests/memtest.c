/* memtest: fill N MiB after the image with a seeded xorshift pattern, verify it, print a checksum.
 * cmdline: mib=N (default 4), seed=S (default 0x9E3779B97F4A7C15).
 * Prints "memtest: OK, N words verified", or "memtest: FAIL, N bad words in M pages" (pages of 4 KiB from the start).
 * Exit 0 when every word reads back, 1 on a mismatch, 2 when the region does not fit in RAM. */
#include "rt.h"

#define MIB (1ul << 20)
#define IDENTITY_LIMIT (1ul << 30)   /* both entry paths map the first 1 GiB */

int guest_main(void)
{
	u64 mib = arg_u64("mib", 4);
	u64 seed = arg_u64("seed", 0x9E3779B97F4A7C15ul);
	if (!seed)
		seed = 1;                    /* xorshift must not start at zero */
	u64 start = ((u64)__image_end + MIB - 1) & ~(MIB - 1);
	u64 end = start + mib * MIB;
	u64 ram = ram_size();

	printf("memtest: %lu MiB at 0x%lx-0x%lx, RAM %lu MiB%s\n", mib, start, end, ram / MIB,
	       ram ? "" : " (unknown: no fw_cfg, no PVH memmap)");
	if (end > IDENTITY_LIMIT || (ram && end > ram)) {
		printf("memtest: region does not fit (limit 0x%lx)\n", ram && ram < IDENTITY_LIMIT ? ram : IDENTITY_LIMIT);
		return 2;
	}

	volatile u64 *p = (volatile u64 *)start;
	u64 words = (end - start) / 8;

	u64 s = seed, sum = 0;
	for (u64 i = 0; i < words; i++) {
		u64 v = xorshift64(&s);
		p[i] = v;
		sum = (sum ^ v) * 0x100000001B3ul + i;
	}

	s = seed;
	u64 bad = 0, bad_pages = 0, last_bad_page = ~0ul, check = 0;
	for (u64 i = 0; i < words; i++) {
		u64 want = xorshift64(&s);
		u64 got = p[i];
		check = (check ^ got) * 0x100000001B3ul + i;
		if (got != want) {
			if (bad < 8)
				printf("memtest: mismatch at 0x%lx: got 0x%016lx want 0x%016lx\n",
				       start + i * 8, got, want);
			bad++;
			if ((i >> 9) != last_bad_page) {   /* 512 words a page; the scan is in order */
				last_bad_page = i >> 9;
				bad_pages++;
			}
		}
	}

	printf("memtest: checksum 0x%016lx\n", check);
	if (bad || check != sum) {
		printf("memtest: FAIL, %lu bad words in %lu pages\n", bad, bad_pages);
		return 1;
	}
	printf("memtest: OK, %lu words verified\n", words);
	return 0;
}
