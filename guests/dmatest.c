/* dmatest: drives hv's DMA copy engine (hv run --dma-cache safe|unsafe|off; the device is at 0xFEB00000) and checks
 * every copy. Rings the doorbell and polls the status while the engine's thread copies. Maps the engine's page (2 MiB uncached leaf in the 3-4 GiB PDPT entry, as timer.c maps the APIC), lays
 * out BUFS source and BUFS destination buffers of PAGES pages each at the first MiB boundary after the image, then for
 * each of ROUNDS rounds fills the sources with a pattern of (seed, round, buffer % KINDS, page, word) and makes PASSES
 * passes of "copy every source to its destination through the engine, then verify every destination word".
 * Buffers i and i+KINDS hold equal pages (and a destination equals its source), so the host's KSM can merge them.
 * cmdline: bufs=N (2-64, default 8) pages=P (1-64, default 4) rounds=R (default 40) passes=K (default 3) kinds=M
 * (1-bufs, default 2) seed=S.
 * Prints "dmatest: buffers at 0xA-0xB" first, then "dmatest: OK, N copies verified (K KiB)" or
 * "dmatest: FAIL, N bad words in M of C copies". Exit 0 when every copy verified, 1 on a mismatch, 2 when there is no
 * engine or the buffers do not fit, 3 when the engine reports an error. */
#include "rt.h"

#define MIB (1ul << 20)
#define PAGE 4096ul
#define IDENTITY_LIMIT (1ul << 30)
#define DMA_BASE 0xFEB00000ul
#define DMA_MAGIC 0x31414D44ul           /* "DMA1" */
#define REG(off) (*(volatile u64 *)(DMA_BASE + (off)))
#define DMA_ID 0x00
#define DMA_SRC 0x08
#define DMA_DST 0x10
#define DMA_LEN 0x18
#define DMA_DOORBELL 0x20
#define DMA_STATUS 0x28
#define DMA_MODE 0x38
#define STATUS_DONE 1
#define STATUS_BUSY 4

static u64 dma_pd[512] __attribute__((aligned(4096)));

/* Maps the engine's page with a 2 MiB uncached (PCD|PWT) leaf in the PDPT entry for 3-4 GiB of the live tables. */
static int map_dma_page(void)
{
	u64 cr3;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	u64 *pml4 = (u64 *)(cr3 & ~0xFFFul);
	if (!(pml4[0] & 1))
		return 0;
	u64 *pdpt = (u64 *)(pml4[0] & 0x000FFFFFFFFFF000ul);
	u64 *pd;
	if (pdpt[3] & 1) {
		if (pdpt[3] & 0x80)
			return 1;                /* a 1 GiB page already maps it */
		pd = (u64 *)(pdpt[3] & 0x000FFFFFFFFFF000ul);
	} else {
		pd = dma_pd;
		pdpt[3] = (u64)dma_pd | 0x3;
	}
	pd[(DMA_BASE >> 21) & 511] = (DMA_BASE & ~0x1FFFFFul) | 0x83 | 0x18;
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
	return 1;
}

static u64 pattern_seed(u64 seed, u64 round, u64 kind, u64 page)
{
	u64 s = seed ^ (round * 0x9E3779B97F4A7C15ul) ^ (kind * 0xC2B2AE3D27D4EB4Ful) ^ (page * 0x165667B19E3779F9ul);
	return s ? s : 1;
}

static const char *mode_name(u64 mode)
{
	return mode == 0 ? "off" : mode == 1 ? "safe" : mode == 2 ? "unsafe" : "unknown";
}

int guest_main(void)
{
	u64 bufs = arg_u64("bufs", 8), pages = arg_u64("pages", 4), rounds = arg_u64("rounds", 40);
	u64 passes = arg_u64("passes", 3), kinds = arg_u64("kinds", 2);
	u64 seed = arg_u64("seed", 0x2545F4914F6CDD1Dul);
	if (bufs < 2 || bufs > 64 || pages < 1 || pages > 64 || kinds < 1 || kinds > bufs || rounds < 1 || passes < 1) {
		puts("dmatest: bufs must be 2-64, pages 1-64, kinds 1-bufs, rounds and passes at least 1\n");
		return 2;
	}

	if (!map_dma_page() || (REG(DMA_ID) & 0xFFFFFFFFul) != DMA_MAGIC) {
		printf("dmatest: no DMA engine at 0x%lx (run with --dma-cache)\n", DMA_BASE);
		return 2;
	}

	u64 size = pages * PAGE;
	u64 start = ((u64)__image_end + MIB - 1) & ~(MIB - 1);
	u64 end = start + 2 * bufs * size;
	u64 ram = ram_size();
	if (end > IDENTITY_LIMIT || (ram && end > ram)) {
		printf("dmatest: buffers do not fit below 0x%lx\n", ram && ram < IDENTITY_LIMIT ? ram : IDENTITY_LIMIT);
		return 2;
	}

	printf("dmatest: buffers at 0x%lx-0x%lx: %lu sources and %lu destinations of %lu pages, engine mode %s\n",
	       start, end, bufs, bufs, pages, mode_name(REG(DMA_MODE)));

	u64 copies = 0, bad_words = 0, bad_copies = 0;
	for (u64 round = 0; round < rounds; round++) {
		for (u64 i = 0; i < bufs; i++) {
			volatile u64 *src = (volatile u64 *)(start + i * size);
			for (u64 p = 0; p < pages; p++) {
				u64 s = pattern_seed(seed, round, i % kinds, p);
				for (u64 w = 0; w < PAGE / 8; w++)
					src[p * (PAGE / 8) + w] = xorshift64(&s);
			}
		}

		for (u64 pass = 0; pass < passes; pass++) {
			for (u64 i = 0; i < bufs; i++) {
				u64 src = start + i * size, dst = start + (bufs + i) * size;
				REG(DMA_SRC) = src;
				REG(DMA_DST) = dst;
				REG(DMA_LEN) = size;
				REG(DMA_DOORBELL) = 1;
				u64 status;
				while ((status = REG(DMA_STATUS)) == STATUS_BUSY)
					__asm__ volatile("pause");
				if (status != STATUS_DONE) {
					printf("dmatest: engine status %lu for the copy of buffer %lu in round %lu\n", status, i, round);
					return 3;
				}

				copies++;
				volatile u64 *d = (volatile u64 *)dst;
				u64 bad = 0;
				for (u64 p = 0; p < pages; p++) {
					u64 s = pattern_seed(seed, round, i % kinds, p);
					for (u64 w = 0; w < PAGE / 8; w++) {
						u64 want = xorshift64(&s), got = d[p * (PAGE / 8) + w];
						if (got != want) {
							if (bad_words + bad < 4)
								printf("dmatest: mismatch in buffer %lu page %lu word %lu (round %lu pass %lu): got 0x%016lx want 0x%016lx\n",
								       i, p, w, round, pass, got, want);
							bad++;
						}
					}
				}

				if (bad) {
					bad_words += bad;
					bad_copies++;
				}
			}
		}
	}

	if (bad_words) {
		printf("dmatest: FAIL, %lu bad words in %lu of %lu copies\n", bad_words, bad_copies, copies);
		return 1;
	}

	printf("dmatest: OK, %lu copies verified (%lu KiB)\n", copies, copies * size / 1024);
	return 0;
}
