/* ksm: many pages with a few repeated contents (what a host's KSM merges), then rewrite some of them
 * (what breaks the merged copy-on-write pages), verifying contents after each phase.
 * cmdline: pages=N (default 1024), kinds=K distinct contents (default 4), every=R: rewrite every R-th
 * page with unique content (default 8), passes=P re-reads of all pages per phase (default 1; raise it
 * to give a host scanner time to merge while the guest runs), salt=S: mixed into the rewritten pages' content
 * (default 0), so guests given different salts rewrite the pages they share with a content no other guest has.
 * Prints "ksm: phase 1: ..." once every page is filled and checked, and "ksm: rewrote N pages" once the rewrite is
 * done (a host may hold the guest at either line); prints the distinct-content counts; exit 0 when they and the contents are as expected, 1 otherwise,
 * 2 when the pages do not fit in RAM. */
#include "rt.h"

#define PAGE 4096ul
#define MIB (1ul << 20)
#define MAX_PAGES 65536ul           /* 256 MiB */

static u64 hashes[MAX_PAGES];
static u32 distinct_idx[MAX_PAGES];

static u8 *base;
static u64 npages;

static u64 salt;

static u64 seed_of(u64 page, u64 kinds, u64 every, int rewritten)
{
	if (rewritten && every && page % every == 0)
		return 0x5151000000000000ul + page + (salt << 24);  /* unique per page (and per salt) */
	return 0xC0FFEE0000000000ul + page % kinds;  /* shared by every page of this kind */
}

static void fill_page(u64 page, u64 seed)
{
	u64 *w = (u64 *)(base + page * PAGE);
	u64 s = seed;
	for (u64 i = 0; i < PAGE / 8; i++)
		w[i] = xorshift64(&s);
}

static int check_page(u64 page, u64 seed)
{
	const volatile u64 *w = (const volatile u64 *)(base + page * PAGE);
	u64 s = seed;
	for (u64 i = 0; i < PAGE / 8; i++)
		if (w[i] != xorshift64(&s))
			return 0;
	return 1;
}

static u64 hash_page(u64 page)
{
	const volatile u64 *w = (const volatile u64 *)(base + page * PAGE);
	u64 h = 0xcbf29ce484222325ul;
	for (u64 i = 0; i < PAGE / 8; i++)
		h = (h ^ w[i]) * 0x100000001B3ul;
	return h;
}

/* Distinct page contents: hash each page, confirm equal hashes with memcmp. */
static u64 count_distinct(void)
{
	u64 n = 0;
	for (u64 p = 0; p < npages; p++) {
		u64 h = hash_page(p);
		hashes[p] = h;
		int dup = 0;
		for (u64 d = 0; d < n && !dup; d++) {
			u32 q = distinct_idx[d];
			dup = hashes[q] == h && !memcmp(base + q * PAGE, base + p * PAGE, PAGE);
		}
		if (!dup)
			distinct_idx[n++] = (u32)p;
	}
	return n;
}

static u64 verify_all(u64 kinds, u64 every, int rewritten, u64 passes)
{
	u64 bad = 0;
	for (u64 pass = 0; pass < passes; pass++)
		for (u64 p = 0; p < npages; p++)
			bad += !check_page(p, seed_of(p, kinds, every, rewritten));
	return bad;
}

int guest_main(void)
{
	npages = arg_u64("pages", 1024);
	u64 kinds = arg_u64("kinds", 4);
	u64 every = arg_u64("every", 8);
	u64 passes = arg_u64("passes", 1);
	salt = arg_u64("salt", 0);
	if (kinds == 0)
		kinds = 1;
	if (npages == 0 || npages > MAX_PAGES) {
		printf("ksm: pages=%lu outside 1..%lu\n", npages, MAX_PAGES);
		return 2;
	}
	base = (u8 *)(((u64)__image_end + MIB - 1) & ~(MIB - 1));
	u64 end = (u64)base + npages * PAGE;
	u64 ram = ram_size();
	if (end > (1ul << 30) || (ram && end > ram)) {
		printf("ksm: %lu pages at %p do not fit (RAM %lu MiB)\n", npages, base, ram / MIB);
		return 2;
	}

	/* Expected counts. */
	u64 want1 = npages < kinds ? npages : kinds, want2 = 0;
	for (u64 k = 0; k < kinds; k++)
		for (u64 p = k; p < npages; p += kinds)
			if (!every || p % every) {
				want2++;
				break;
			}
	if (every)
		want2 += (npages + every - 1) / every;

	printf("ksm: %lu pages at %p, %lu kinds, salt %lu\n", npages, base, kinds, salt);
	for (u64 p = 0; p < npages; p++)
		fill_page(p, seed_of(p, kinds, every, 0));
	u64 bad = verify_all(kinds, every, 0, passes);
	u64 d1 = count_distinct();
	printf("ksm: phase 1: %lu distinct of %lu pages (expected %lu), %lu bad\n", d1, npages, want1, bad);

	u64 rewritten = 0;
	for (u64 p = 0; every && p < npages; p += every, rewritten++)
		fill_page(p, seed_of(p, kinds, every, 1));
	printf("ksm: rewrote %lu pages\n", rewritten);
	u64 bad2 = verify_all(kinds, every, 1, passes);
	u64 d2 = count_distinct();
	printf("ksm: phase 2: rewrote 1 page in %lu: %lu distinct (expected %lu), %lu bad\n", every, d2, want2, bad2);

	if (bad || bad2 || d1 != want1 || d2 != want2) {
		printf("ksm: FAIL\n");
		return 1;
	}
	printf("ksm: OK\n");
	return 0;
}
