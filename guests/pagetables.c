/* pagetables: build our own 4-level tables, alias a test region at two virtual addresses, write through
 * one, read through the other, remap a page, INVLPG, and verify what each mapping reads.
 *
 *   identity  0 .. 1 GiB             2 MiB pages (PML4[0] -> PDPT[0] -> PD)   code, data, stack
 *   alias A   0x0000_0040_0000_0000  4 KiB pages (PML4[0] -> PDPT[1] -> PD -> PT)  -> frames[0..15]
 *   alias B   0x0000_0080_0000_0000  4 KiB pages (PML4[1] -> PDPT -> PD -> PT)     -> frames[(p + r) % 16]
 *
 * cmdline: ad=1 makes missing Accessed/Dirty bits a failure (default: reported only); rounds=N (default 1) runs
 * the whole test N times: round r rebuilds the tables with B rotated by r pages (so a translation kept from the
 * previous round reads the wrong frame), salts every pattern with r and remaps B's page (3 + r) % 16. One round
 * prints a line per check; more print only failed checks (with their round) and one summary line.
 * Exit 0 on success, 1 on any mismatch, 2 for rounds=0. */
#include "rt.h"

#define PAGE 4096ul
#define NPAGES 16
#define PTE_P  0x001ul
#define PTE_RW 0x002ul
#define PTE_A  0x020ul
#define PTE_D  0x040ul
#define PTE_PS 0x080ul

#define VA_A 0x40000000ul      /* 1 GiB: PML4[0], PDPT[1] */
#define VA_B 0x8000000000ul    /* 512 GiB: PML4[1] */

typedef u64 table_t[512] __attribute__((aligned(4096)));
static table_t pml4, pdpt0, pd_ident, pd_a, pt_a, pdpt1, pd_b, pt_b;
static u8 frames[NPAGES + 1][PAGE] __attribute__((aligned(4096)));   /* last one: remap target */

static inline u64 read_cr3(void) { u64 v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline void write_cr3(u64 v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline void invlpg(u64 va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }

static u64 pattern(u64 page, u64 word, u64 salt) { return (page << 48) ^ (word * 0x9E3779B97F4A7C15ul) ^ salt; }

static int failures;
static int quiet;              /* rounds > 1: print failed checks only */
static u64 round;              /* the round being run, from 0 */
static u64 words_verified, cr3_loads, invlpgs;

static void check(int ok, const char *what)
{
	if (!quiet)
		printf("pagetables: %-44s %s\n", what, ok ? "ok" : "FAIL");
	else if (!ok)
		printf("pagetables: round %lu: %s FAIL\n", round, what);
	if (!ok)
		failures++;
}

/* "prefix<n>suffix" into buf (at most 63 characters), for the check labels that name the remapped page. */
static const char *label(char *buf, const char *prefix, u64 n, const char *suffix)
{
	char digits[24];
	int nd = 0, at = 0;
	do {
		digits[nd++] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	for (; *prefix && at < 63; prefix++)
		buf[at++] = *prefix;
	while (nd && at < 63)
		buf[at++] = digits[--nd];
	for (; *suffix && at < 63; suffix++)
		buf[at++] = *suffix;
	buf[at] = 0;
	return buf;
}

/* Page p of the mapping at va is frames[(p + rot) % NPAGES]: compare every word with pattern(frame, word, salt). */
static int verify(u64 va, u64 rot, u64 salt)
{
	int ok = 1;
	for (u64 p = 0; p < NPAGES; p++) {
		volatile u64 *w = (volatile u64 *)(va + p * PAGE);
		u64 frame = (p + rot) % NPAGES;
		for (u64 i = 0; i < PAGE / 8; i++)
			if (w[i] != pattern(frame, i, salt)) {
				if (ok)
					printf("pagetables: first mismatch at 0x%lx: 0x%lx\n", va + p * PAGE + i * 8, w[i]);
				ok = 0;
			}
	}
	words_verified += NPAGES * PAGE / 8;
	return ok;
}

static void fill(u64 va, u64 rot, u64 salt)
{
	for (u64 p = 0; p < NPAGES; p++) {
		volatile u64 *w = (volatile u64 *)(va + p * PAGE);
		u64 frame = (p + rot) % NPAGES;
		for (u64 i = 0; i < PAGE / 8; i++)
			w[i] = pattern(frame, i, salt);
	}
}

static void load_cr3(u64 v)
{
	write_cr3(v);
	cr3_loads++;
}

/* One round: build, alias, write through one mapping and read through the other, remap, INVLPG, CR3 reload,
 * verify; back on old_cr3 at the end. Round 0 is the test as it always was (no rotation, salts 0x1111..0x3333). */
static void run_round(u64 old_cr3, int enforce_ad)
{
	const u64 rot = round % NPAGES;
	const u64 salt = round << 24;
	char buf[64];

	/* Identity map of the first GiB, like the boot tables, so code, data and stack stay put. Every entry is
	 * rewritten, so the walker's A/D bits from the previous round are gone. */
	pml4[0] = (u64)pdpt0 | PTE_P | PTE_RW;
	pdpt0[0] = (u64)pd_ident | PTE_P | PTE_RW;
	for (u64 i = 0; i < 512; i++)
		pd_ident[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS;
	/* Alias A. */
	pdpt0[1] = (u64)pd_a | PTE_P | PTE_RW;
	pd_a[0] = (u64)pt_a | PTE_P | PTE_RW;
	/* Alias B, through a second PML4 entry, rotated by the round. */
	pml4[1] = (u64)pdpt1 | PTE_P | PTE_RW;
	pdpt1[0] = (u64)pd_b | PTE_P | PTE_RW;
	pd_b[0] = (u64)pt_b | PTE_P | PTE_RW;
	for (u64 p = 0; p < NPAGES; p++) {
		pt_a[p] = (u64)frames[p] | PTE_P | PTE_RW;
		pt_b[p] = (u64)frames[(p + rot) % NPAGES] | PTE_P | PTE_RW;
	}

	if (!quiet)
		printf("pagetables: old CR3 0x%lx, new CR3 0x%lx, frames at 0x%lx\n", old_cr3, (u64)pml4, (u64)frames);
	load_cr3((u64)pml4);
	check(read_cr3() == (u64)pml4, "CR3 loaded");

	fill(VA_A, 0, salt ^ 0x1111);
	check(verify(VA_B, rot, salt ^ 0x1111), "write via A, read via B");
	check(verify((u64)frames, 0, salt ^ 0x1111), "write via A, read via identity");

	fill(VA_B, rot, salt ^ 0x2222);
	check(verify(VA_A, 0, salt ^ 0x2222), "write via B, read via A");

	/* Accessed/Dirty bits, set by the page walker on the first read/write. */
	int ad = (pt_a[0] & (PTE_A | PTE_D)) == (PTE_A | PTE_D) && (pt_b[0] & (PTE_A | PTE_D)) == (PTE_A | PTE_D) &&
	         (pd_a[0] & PTE_A) && (pml4[1] & PTE_A);
	if (enforce_ad)
		check(ad, "A/D bits set by the walker");
	else if (!quiet)
		printf("pagetables: %-44s %s\n", "A/D bits set by the walker", ad ? "ok" : "not set (ignored; ad=1 enforces)");

	/* Remap B's victim page to the spare frame. Touch it first so a TLB holds the old translation. */
	const u64 victim = (3 + round) % NPAGES;
	const u64 behind = (victim + rot) % NPAGES;       /* the frame B's victim page maps before the remap */
	volatile u64 *spare = (volatile u64 *)frames[NPAGES];
	for (u64 i = 0; i < PAGE / 8; i++)
		spare[i] = pattern(99, i, salt ^ 0x3333);
	volatile u64 *bv = (volatile u64 *)(VA_B + victim * PAGE);
	check(bv[5] == pattern(behind, 5, salt ^ 0x2222), label(buf, "B page ", victim, " before remap"));
	pt_b[victim] = (u64)frames[NPAGES] | PTE_P | PTE_RW;
	invlpg(VA_B + victim * PAGE);
	invlpgs++;
	int ok = 1;
	for (u64 i = 0; i < PAGE / 8; i++)
		ok &= bv[i] == pattern(99, i, salt ^ 0x3333);
	check(ok, label(buf, "B page ", victim, " after remap + INVLPG = spare frame"));
	volatile u64 *ab = (volatile u64 *)(VA_A + behind * PAGE);
	check(ab[5] == pattern(behind, 5, salt ^ 0x2222), label(buf, "A page ", behind, " unchanged by B's remap"));
	bv[7] = 0xfeedfacecafebeeful ^ salt;
	check(spare[7] == (0xfeedfacecafebeeful ^ salt) && ab[7] == pattern(behind, 7, salt ^ 0x2222),
	      "write via remapped B hits spare only");

	/* Map it back and flush the whole TLB by reloading CR3. */
	pt_b[victim] = (u64)frames[behind] | PTE_P | PTE_RW;
	load_cr3((u64)pml4);
	check(bv[7] == pattern(behind, 7, salt ^ 0x2222), label(buf, "B page ", victim, " restored after CR3 reload"));

	load_cr3(old_cr3);
	check(verify((u64)frames, 0, salt ^ 0x2222), "back on the boot tables, frames intact");
}

int guest_main(void)
{
	u64 old_cr3 = read_cr3();
	u64 rounds = arg_u64("rounds", 1);
	int enforce_ad = arg_u64("ad", 0) != 0;
	if (rounds == 0) {
		printf("pagetables: rounds=0: needs at least 1 round\n");
		return 2;
	}
	quiet = rounds > 1;
	if (quiet)
		printf("pagetables: %lu rounds, tables at 0x%lx, frames at 0x%lx\n", rounds, (u64)pml4, (u64)frames);

	for (round = 0; round < rounds; round++)
		run_round(old_cr3, enforce_ad);

	if (quiet)
		printf("pagetables: %lu rounds: %lu words verified, %lu CR3 loads, %lu INVLPGs, %d failed checks\n",
		       rounds, words_verified, cr3_loads, invlpgs, failures);
	if (failures) {
		printf("pagetables: FAIL, %d checks failed\n", failures);
		return 1;
	}
	printf("pagetables: OK\n");
	return 0;
}
