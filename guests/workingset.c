/* workingset: a hot set touched on every pass and a cold set touched once per round, every page verified
 * on every touch; it times each pass, so a host that evicts the hot set shows slower hot passes.
 *
 *   RAM from the first 1 MiB boundary above the image: hot pages [0, H), then cold pages [H, H + C).
 *   Every page holds a header word (TAG | generation | page index) and 511 words base + j * STEP, where
 *   base mixes the seed, the page index and the generation: a page that comes back with another page's
 *   data, stale data (an older generation) or zeroes is caught and named.
 *   fill: every page gets generation 1. Then `passes` rounds of `hotper` hot passes and one cold pass.
 *   Each pass touches every page of its set in order: reads check the page, writes check it and then
 *   write the next generation. Reads and writes alternate (pass 1 reads, pass 2 writes, ...), counted
 *   separately for the hot and the cold set, so the host's aging sees accessed bits on every hot page
 *   and its reclaim sees dirty pages.
 *
 * cmdline: hot=MIB (8), cold=MIB (64), passes=N rounds (4), hotper=K hot passes per cold pass (8),
 *          seed=S (0x9E3779B97F4A7C15);
 *          corrupt=P fault=zero|copy|stale: after the fill, damage page P (0-based, hot pages first) the
 *          way a broken host would (zeroes, page P+1's data, P's previous generation) — the self-test.
 * Prints the fill, one line per round and the hot and cold averages and worst passes in RDTSC cycles
 * (every timing line says "cycles"; our interpreter counts instructions there, QEMU and KVM host time),
 * then "workingset: OK, N pages verified (M distinct)".
 * Exit 0 ok, 1 a bad page ("workingset: FAIL at page P ..."), 2 bad parameters or the sets do not fit. */
#include "rt.h"

#define PAGE 4096ul
#define WORDS (PAGE / 8)
#define MIB (1ul << 20)
#define IDENTITY_LIMIT (1ul << 30)   /* both entry paths map the first 1 GiB */
#define STEP 0x9E3779B97F4A7C15ul    /* odd: no page of the pattern is all zeroes */
#define TAG 0x5753ul                 /* "WS" in the header's top 16 bits */

static u8 *region;
static u64 nhot, ncold, seed;
static u64 checks;                   /* page verifications so far */

static volatile u64 *page_at(u64 page) { return (volatile u64 *)(region + page * PAGE); }

static u64 header(u64 page, u64 gen) { return TAG << 48 | (gen & 0xffff) << 32 | (page & 0xffffffff); }

/* splitmix64's finaliser over (seed, page, generation): word 1 of the page; word j is base + (j-1)*STEP. */
static u64 base_of(u64 page, u64 gen)
{
	u64 x = seed ^ (page * 0xD1B54A32D192ED03ul) ^ (gen * 0x8CB92BA72F3D8DD7ul);
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ul;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBul;
	return x ^ (x >> 31);
}

static void write_page(u64 page, u64 gen)
{
	volatile u64 *w = page_at(page);
	u64 e = base_of(page, gen);
	w[0] = header(page, gen);
#pragma GCC unroll 8
	for (u64 j = 1; j < WORDS; j++) {
		w[j] = e;
		e += STEP;
	}
}

static int page_ok(u64 page, u64 gen)
{
	const volatile u64 *w = page_at(page);
	u64 e = base_of(page, gen), acc = w[0] ^ header(page, gen);
#pragma GCC unroll 8
	for (u64 j = 1; j < WORDS; j++) {
		acc |= w[j] ^ e;
		e += STEP;
	}
	return acc == 0;
}

static const char *set_of(u64 page) { return page < nhot ? "hot" : "cold"; }

/* The first bad page: say what it holds instead, then stop the VM with exit code 1. */
__attribute__((noreturn)) static void fail(u64 page, u64 gen, const char *kind, u64 pass)
{
	const volatile u64 *w = page_at(page);
	u64 first = WORDS, got = 0, want = 0, zero = 1;
	for (u64 j = 0; j < WORDS; j++) {
		u64 expect = j ? base_of(page, gen) + (j - 1) * STEP : header(page, gen);
		u64 v = w[j];
		zero &= v == 0;
		if (v != expect && first == WORDS) {
			first = j;
			got = v;
			want = expect;
		}
	}
	u64 h = w[0], q = h & 0xffffffff, g = (h >> 32) & 0xffff;
	printf("workingset: page %lu word %lu: got 0x%016lx want 0x%016lx\n", page, first, got, want);
	printf("workingset: FAIL at page %lu (%s, gpa 0x%lx) on %s pass %lu: ", page, set_of(page),
	       (u64)page_at(page), kind, pass);
	if (zero)
		printf("it reads as zeroes\n");
	else if (h >> 48 != TAG)
		printf("it holds no page of this test\n");
	else if (q != page)
		printf("it holds page %lu's data (generation %lu)\n", q, g);
	else if (g != (gen & 0xffff))
		printf("it holds stale data (generation %lu, want %lu)\n", g, gen & 0xffff);
	else
		printf("its header is right but word %lu is not\n", first);
	exit(1);
}

/* One pass over pages [first, first + n): check each, and on a write pass give it generation *gen + 1. */
static u64 pass(u64 first, u64 n, u64 *gen, int write, const char *kind, u64 number)
{
	u64 t0 = rdtsc(), g = *gen;
	for (u64 p = first; p < first + n; p++) {
		if (!page_ok(p, g))
			fail(p, g, kind, number);
		if (write)
			write_page(p, g + 1);
	}
	checks += n;
	if (write)
		*gen = g + 1;
	return rdtsc() - t0;
}

struct times {
	u64 count, sum, worst, worst_pass;
};

static void account(struct times *t, u64 cycles)
{
	t->count++;
	t->sum += cycles;
	if (cycles > t->worst) {
		t->worst = cycles;
		t->worst_pass = t->count;
	}
}

static void summary(const char *kind, const struct times *t, u64 pages)
{
	u64 avg = t->count ? t->sum / t->count : 0;
	printf("workingset: %s passes: %lu, avg %lu cycles (%lu per page), worst %lu cycles (pass %lu)\n", kind,
	       t->count, avg, pages ? avg / pages : 0, t->worst, t->worst_pass);
}

static void corrupt(u64 page, u64 hot_gen, u64 cold_gen)
{
	volatile u64 *w = page_at(page);
	const char *how;
	if (arg_is("fault", "copy")) {
		const volatile u64 *src = page_at((page + 1) % (nhot + ncold));
		for (u64 j = 0; j < WORDS; j++)
			w[j] = src[j];
		how = "the next page's data";
	} else if (arg_is("fault", "stale")) {
		write_page(page, (page < nhot ? hot_gen : cold_gen) - 1);
		how = "its previous generation";
	} else {
		for (u64 j = 0; j < WORDS; j++)
			w[j] = 0;
		how = "zeroes";
	}
	printf("workingset: self-test: page %lu (%s) now holds %s\n", page, set_of(page), how);
}

int guest_main(void)
{
	u64 hot_mib = arg_u64("hot", 8), cold_mib = arg_u64("cold", 64);
	u64 rounds = arg_u64("passes", 4), hotper = arg_u64("hotper", 8);
	seed = arg_u64("seed", 0x9E3779B97F4A7C15ul);
	u64 limit = IDENTITY_LIMIT / MIB;
	if (hot_mib == 0 || rounds == 0 || hotper == 0 || hot_mib > limit || cold_mib > limit - hot_mib) {
		printf("workingset: hot=%lu cold=%lu passes=%lu hotper=%lu: hot, passes and hotper must be at least 1, "
		       "hot + cold at most %lu MiB\n", hot_mib, cold_mib, rounds, hotper, limit);
		return 2;
	}
	nhot = hot_mib * MIB / PAGE;
	ncold = cold_mib * MIB / PAGE;
	region = (u8 *)(((u64)__image_end + MIB - 1) & ~(MIB - 1));
	u64 end = (u64)region + (nhot + ncold) * PAGE;
	u64 ram = ram_size();

	printf("workingset: hot %lu MiB (%lu pages) at 0x%lx, cold %lu MiB (%lu pages) at 0x%lx, RAM %lu MiB%s\n",
	       hot_mib, nhot, (u64)region, cold_mib, ncold, (u64)page_at(nhot), ram / MIB,
	       ram ? "" : " (unknown: no fw_cfg, no PVH memmap)");
	if (end > IDENTITY_LIMIT || (ram && end > ram)) {
		printf("workingset: the sets do not fit (end 0x%lx, limit 0x%lx)\n", end,
		       ram && ram < IDENTITY_LIMIT ? ram : IDENTITY_LIMIT);
		return 2;
	}
	printf("workingset: %lu x (%lu hot passes + 1 cold pass), reads and writes alternate, seed 0x%lx\n",
	       rounds, hotper, seed);

	u64 t0 = rdtsc();
	for (u64 p = 0; p < nhot + ncold; p++)
		write_page(p, 1);
	printf("workingset: filled %lu pages in %lu cycles\n", nhot + ncold, rdtsc() - t0);
	u64 hot_gen = 1, cold_gen = 1;
	u64 bad = arg_u64("corrupt", ~0ul);
	if (bad < nhot + ncold)
		corrupt(bad, hot_gen, cold_gen);

	struct times hot = { 0 }, cold = { 0 };
	for (u64 r = 1; r <= rounds; r++) {
		u64 sum = 0, worst = 0;
		for (u64 k = 0; k < hotper; k++) {
			u64 c = pass(0, nhot, &hot_gen, (hot.count + 1) % 2 == 0, "hot", hot.count + 1);
			account(&hot, c);
			sum += c;
			worst = c > worst ? c : worst;
		}
		u64 c = 0;
		if (ncold) {
			c = pass(nhot, ncold, &cold_gen, (cold.count + 1) % 2 == 0, "cold", cold.count + 1);
			account(&cold, c);
		}
		printf("workingset: round %lu: hot avg %lu worst %lu cycles, cold %lu cycles\n", r, sum / hotper, worst, c);
	}
	summary("hot", &hot, nhot);
	summary("cold", &cold, ncold);
	printf("workingset: OK, %lu pages verified (%lu distinct)\n", checks, nhot + ncold);
	return 0;
}
