/* pagetables: build our own 4-level tables, alias a test region at two virtual addresses, write through
 * one, read through the other, remap a page, INVLPG, and verify what each mapping reads.
 *
 *   identity  0 .. 1 GiB             2 MiB pages (PML4[0] -> PDPT[0] -> PD)   code, data, stack
 *   alias A   0x0000_0040_0000_0000  4 KiB pages (PML4[0] -> PDPT[1] -> PD -> PT)  -> frames[0..15]
 *   alias B   0x0000_0080_0000_0000  4 KiB pages (PML4[1] -> PDPT -> PD -> PT)     -> frames[0..15]
 *
 * cmdline: ad=1 makes missing Accessed/Dirty bits a failure (default: reported only).
 * Exit 0 on success, 1 on any mismatch. */
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
static void check(int ok, const char *what)
{
	printf("pagetables: %-44s %s\n", what, ok ? "ok" : "FAIL");
	if (!ok)
		failures++;
}

/* Compare every word of NPAGES pages at va with pattern(page, word, salt). */
static int verify(u64 va, u64 salt)
{
	int ok = 1;
	for (u64 p = 0; p < NPAGES; p++) {
		volatile u64 *w = (volatile u64 *)(va + p * PAGE);
		for (u64 i = 0; i < PAGE / 8; i++)
			if (w[i] != pattern(p, i, salt)) {
				if (ok)
					printf("pagetables: first mismatch at 0x%lx: 0x%lx\n", va + p * PAGE + i * 8, w[i]);
				ok = 0;
			}
	}
	return ok;
}

static void fill(u64 va, u64 salt)
{
	for (u64 p = 0; p < NPAGES; p++) {
		volatile u64 *w = (volatile u64 *)(va + p * PAGE);
		for (u64 i = 0; i < PAGE / 8; i++)
			w[i] = pattern(p, i, salt);
	}
}

int guest_main(void)
{
	u64 old_cr3 = read_cr3();

	/* Identity map of the first GiB, like the boot tables, so code, data and stack stay put. */
	pml4[0] = (u64)pdpt0 | PTE_P | PTE_RW;
	pdpt0[0] = (u64)pd_ident | PTE_P | PTE_RW;
	for (u64 i = 0; i < 512; i++)
		pd_ident[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS;
	/* Alias A. */
	pdpt0[1] = (u64)pd_a | PTE_P | PTE_RW;
	pd_a[0] = (u64)pt_a | PTE_P | PTE_RW;
	/* Alias B, through a second PML4 entry. */
	pml4[1] = (u64)pdpt1 | PTE_P | PTE_RW;
	pdpt1[0] = (u64)pd_b | PTE_P | PTE_RW;
	pd_b[0] = (u64)pt_b | PTE_P | PTE_RW;
	for (u64 p = 0; p < NPAGES; p++) {
		pt_a[p] = (u64)frames[p] | PTE_P | PTE_RW;
		pt_b[p] = (u64)frames[p] | PTE_P | PTE_RW;
	}

	printf("pagetables: old CR3 0x%lx, new CR3 0x%lx, frames at 0x%lx\n", old_cr3, (u64)pml4, (u64)frames);
	write_cr3((u64)pml4);
	check(read_cr3() == (u64)pml4, "CR3 loaded");

	fill(VA_A, 0x1111);
	check(verify(VA_B, 0x1111), "write via A, read via B");
	check(verify((u64)frames, 0x1111), "write via A, read via identity");

	fill(VA_B, 0x2222);
	check(verify(VA_A, 0x2222), "write via B, read via A");

	/* Accessed/Dirty bits, set by the page walker on the first read/write. */
	int ad = (pt_a[0] & (PTE_A | PTE_D)) == (PTE_A | PTE_D) && (pt_b[0] & (PTE_A | PTE_D)) == (PTE_A | PTE_D) &&
	         (pd_a[0] & PTE_A) && (pml4[1] & PTE_A);
	if (arg_u64("ad", 0))
		check(ad, "A/D bits set by the walker");
	else
		printf("pagetables: %-44s %s\n", "A/D bits set by the walker", ad ? "ok" : "not set (ignored; ad=1 enforces)");

	/* Remap page 3 of B to the spare frame. Touch it first so a TLB holds the old translation. */
	const u64 victim = 3;
	volatile u64 *spare = (volatile u64 *)frames[NPAGES];
	for (u64 i = 0; i < PAGE / 8; i++)
		spare[i] = pattern(99, i, 0x3333);
	volatile u64 *b3 = (volatile u64 *)(VA_B + victim * PAGE);
	check(b3[5] == pattern(victim, 5, 0x2222), "B page 3 before remap");
	pt_b[victim] = (u64)frames[NPAGES] | PTE_P | PTE_RW;
	invlpg(VA_B + victim * PAGE);
	int ok = 1;
	for (u64 i = 0; i < PAGE / 8; i++)
		ok &= b3[i] == pattern(99, i, 0x3333);
	check(ok, "B page 3 after remap + INVLPG = spare frame");
	volatile u64 *a3 = (volatile u64 *)(VA_A + victim * PAGE);
	check(a3[5] == pattern(victim, 5, 0x2222), "A page 3 unchanged by B's remap");
	b3[7] = 0xfeedfacecafebeeful;
	check(spare[7] == 0xfeedfacecafebeeful && a3[7] == pattern(victim, 7, 0x2222), "write via remapped B hits spare only");

	/* Map it back and flush the whole TLB by reloading CR3. */
	pt_b[victim] = (u64)frames[victim] | PTE_P | PTE_RW;
	write_cr3((u64)pml4);
	check(b3[7] == pattern(victim, 7, 0x2222), "B page 3 restored after CR3 reload");

	write_cr3(old_cr3);
	check(verify((u64)frames, 0x2222), "back on the boot tables, frames intact");
	if (failures) {
		printf("pagetables: FAIL, %d checks failed\n", failures);
		return 1;
	}
	printf("pagetables: OK\n");
	return 0;
}
