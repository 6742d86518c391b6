/* stress: every CPU writes and verifies its own region of memory, pass after pass, until the host says stop (the
 * guest side of hv demo stress, in the style of KVM's mmu_stress_test). The host changes the memory under the guest
 * meanwhile (swap, KSM, migration, huge-page splits and collapses, fork, mprotect storms, memslot remaps,
 * MADV_DONTNEED); every page must read back what this CPU wrote in this pass.
 *
 *   CPUs       fw_cfg NB_CPUS (hv --smp N); lib/smpboot.h starts the APs.
 *   layout     the control page at the first MiB boundary after the image, then the discard counters (one u32 per
 *              data page, written by the host) and each CPU's snapshot of them (written by the guest); the data
 *              regions start at the next 2 MiB boundary, mib=N MiB per CPU (default 4), CPU k's region k-th.
 *   pass       CPU k writes every page of its region (a 64-bit pattern of cpu, pass, page and word; every
 *              kinds-th page of the even 2 MiB chunks of the region instead a pattern of the page's kind alone, the
 *              same in every CPU and pass, so the host's KSM finds equal pages, while the odd chunks stay private and
 *              can collapse into huge pages: kinds=K, default 8, 0 for none), then reads every page back.
 *   discards   the host may drop a data page (MADV_DONTNEED) at any time: it bumps the page's discard counter to an
 *              odd value first and to the next even value after, and the page then reads as zeros (or, dropped
 *              while the CPU was writing it, zeros where it wrote before the drop). A page whose every word is zero
 *              or what the CPU wrote is accepted (counted as discarded, not corrupted) only when its counter was odd
 *              when the CPU wrote it or has moved since: no other page may differ from what the CPU wrote.
 *   stop       the host sets the control page's stop word; each CPU finishes its pass and stops.
 *   passes=P   stop after P passes instead (0, the default: run until stopped).
 *
 * Prints "stress: control at 0x..., data at 0x..., P pages per CPU, N CPUs", a line per CPU per pass
 * ("stress: cpu C pass P: V verified, X corrupted, D discarded"), each corrupted page (at most 16 per CPU), and at
 * the end "stress: OK, ..." or "stress: FAIL, ...". Exit 0 when no page was corrupted, 1 otherwise, 2 when the
 * memory does not fit. */
#include "smpboot.h"

#define MIB (1ul << 20)
#define PAGE 4096ul
#define WORDS (PAGE / 8)
#define HUGE (2ul << 20)
#define IDENTITY_LIMIT (1ul << 30)
#define CONTROL_MAGIC 0x5354524553530001ul /* "STRESS", version 1 */
#define MAX_REPORTED 16

/* The page the host reads and writes (its layout is the demo's StressGuestLayout). */
struct control {
	u64 magic;
	volatile u64 stop;       /* host: set to 1 to stop */
	u64 cpus;
	u64 pages_per_cpu;
	u64 data_start;          /* gpa of CPU 0's region */
	u64 discard_start;       /* gpa of the u32 discard counters, one per data page, CPU 0's first */
};

extern u64 boot_pml4[512];

static struct control *control;
static volatile u32 *discards;   /* host-written */
static u32 *snapshots;           /* guest-written: each page's discard counter when it was last written */
static u64 data_start, pages_per_cpu, kinds, seed, max_passes;
static volatile u32 print_lock, done_cpus;
static volatile u64 total_passes, total_verified, total_corrupted, total_discarded;

static void lock_print(void) { while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE)) pause(); }
static void unlock_print(void) { __atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE); }

/* Never zero, so a dropped page (all zeros) is never mistaken for a written one. */
static u64 pattern(u32 cpu, u64 pass, u64 page, u64 word)
{
	u64 x;
	if (kinds && page % kinds == 0 && page / (HUGE / PAGE) % 2 == 0)
		x = (page / kinds % 4 + 1) * 0x9E3779B97F4A7C15ul ^ (seed + word * 0x100000001B3ul);
	else
		x = (((u64)cpu << 56) ^ (pass << 32) ^ (page << 9) ^ word) * 0xD6E8FEB86659FD93ul ^ seed;
	return x | 1;
}

static u64 write_pass(u32 cpu, u64 pass)
{
	u64 first = cpu * pages_per_cpu;
	for (u64 i = 0; i < pages_per_cpu; i++) {
		snapshots[first + i] = __atomic_load_n(&discards[first + i], __ATOMIC_ACQUIRE);
		volatile u64 *p = (volatile u64 *)(data_start + (first + i) * PAGE);
		for (u64 w = 0; w < WORDS; w++)
			p[w] = pattern(cpu, pass, i, w);
	}
	return pages_per_cpu;
}

/* What a discard can leave: the page dropped between two of the CPU's stores holds zeros before the drop and the
 * pattern after it, so every word is either zero or what the CPU wrote. */
static int discard_shaped(volatile u64 *p, u32 cpu, u64 pass, u64 page)
{
	for (u64 w = 0; w < WORDS; w++)
		if (p[w] && p[w] != pattern(cpu, pass, page, w))
			return 0;
	return 1;
}

static void verify_pass(u32 cpu, u64 pass, u64 *corrupted, u64 *discarded, u64 *reported)
{
	u64 first = cpu * pages_per_cpu;
	for (u64 i = 0; i < pages_per_cpu; i++) {
		volatile u64 *p = (volatile u64 *)(data_start + (first + i) * PAGE);
		u64 bad = WORDS, got = 0;
		for (u64 w = 0; w < WORDS; w++)
			if (p[w] != pattern(cpu, pass, i, w)) {
				bad = w;
				got = p[w];
				break;
			}
		if (bad == WORDS)
			continue;
		/* The counter is read after the page: a discard that zeroed the page moved it before (to odd) or is over. */
		u32 now = __atomic_load_n(&discards[first + i], __ATOMIC_ACQUIRE);
		u32 then = snapshots[first + i];
		if (discard_shaped(p, cpu, pass, i) && ((then & 1) || now != then)) {
			(*discarded)++;
			continue;
		}
		(*corrupted)++;
		if ((*reported)++ < MAX_REPORTED) {
			lock_print();
			printf("stress: cpu %u pass %lu page %lu (gpa 0x%lx) corrupted: word %lu is 0x%lx, expected 0x%lx\n",
			       cpu, pass, i, (u64)p, bad, got, pattern(cpu, pass, i, bad));
			unlock_print();
		}
	}
}

static void run(u32 cpu)
{
	u64 corrupted = 0, discarded = 0, reported = 0, pass = 0;
	while (!control->stop && (!max_passes || pass < max_passes)) {
		pass++;
		u64 written = write_pass(cpu, pass);
		u64 c = corrupted, d = discarded;
		verify_pass(cpu, pass, &corrupted, &discarded, &reported);
		lock_print();
		printf("stress: cpu %u pass %lu: %lu verified, %lu corrupted, %lu discarded\n", cpu, pass, written,
		       corrupted - c, discarded - d);
		unlock_print();
		__atomic_add_fetch(&total_verified, written, __ATOMIC_RELAXED);
	}
	__atomic_add_fetch(&total_passes, pass, __ATOMIC_RELAXED);
	__atomic_add_fetch(&total_corrupted, corrupted, __ATOMIC_RELAXED);
	__atomic_add_fetch(&total_discarded, discarded, __ATOMIC_RELAXED);
	__atomic_add_fetch(&done_cpus, 1, __ATOMIC_RELEASE);
}

static void ap_main(void)
{
	u32 cpu = this_cpu();
	apic_write(APIC_SVR, 0x1FF);
	__atomic_add_fetch(&started, 1, __ATOMIC_RELEASE);
	barrier();
	run(cpu);
	for (;;)
		__asm__ volatile("cli; hlt");
}

static void map_apic(void)
{
	static u64 apic_pd[512] __attribute__((aligned(4096)));
	u64 *pdpt = (u64 *)(boot_pml4[0] & ~0xFFFul);
	apic_pd[(APIC_BASE >> 21) & 511] = APIC_BASE | 0x9Bul; /* P | RW | PWT | PCD | PS */
	pdpt[(APIC_BASE >> 30) & 511] = (u64)apic_pd | 0x3ul;
	__asm__ volatile("mov %0, %%cr3" : : "r"((u64)boot_pml4) : "memory");
}

int guest_main(void)
{
	u32 cpus = fw_cfg_present() ? (u32)(fw_cfg_read_u64(FW_CFG_NB_CPUS) & 0xFFFF) : 1;
	u64 mib = arg_u64("mib", 4);
	kinds = arg_u64("kinds", 8);
	seed = arg_u64("seed", 0x5EED);
	max_passes = arg_u64("passes", 0);
	if (cpus < 1 || cpus > MAX_CPUS) {
		printf("stress: 1 to %u CPUs, got %u\n", MAX_CPUS, cpus);
		return 2;
	}

	u64 control_start = ((u64)__image_end + MIB - 1) & ~(MIB - 1);
	pages_per_cpu = mib * MIB / PAGE;
	u64 pages = pages_per_cpu * cpus;
	u64 discard_start = control_start + PAGE;
	u64 snapshot_start = discard_start + pages * 4;
	data_start = (snapshot_start + pages * 4 + HUGE - 1) & ~(HUGE - 1);
	u64 end = data_start + pages * PAGE;
	u64 ram = ram_size();
	if (!mib || end > IDENTITY_LIMIT || (ram && end > ram)) {
		printf("stress: %lu MiB for each of %u CPUs does not fit (it ends at 0x%lx, RAM 0x%lx)\n", mib, cpus, end, ram);
		return 2;
	}

	control = (struct control *)control_start;
	discards = (volatile u32 *)discard_start;
	snapshots = (u32 *)snapshot_start;
	memset((void *)discard_start, 0, pages * 8);
	control->stop = 0;
	control->cpus = cpus;
	control->pages_per_cpu = pages_per_cpu;
	control->data_start = data_start;
	control->discard_start = discard_start;
	__atomic_store_n(&control->magic, CONTROL_MAGIC, __ATOMIC_RELEASE);
	printf("stress: control at 0x%lx, data at 0x%lx, %lu pages per CPU, %u CPUs\n", control_start, data_start,
	       pages_per_cpu, cpus);

	smp_cpu_count = cpus;
	if (cpus > 1) {
		map_apic();
		apic_write(APIC_SVR, 0x1FF);
		if (!start_aps("stress", cpus, ap_main))
			return 1;
		barrier();
	}
	run(0);
	while (__atomic_load_n(&done_cpus, __ATOMIC_ACQUIRE) < cpus) /* each finishes the pass it is in */
		pause();
	int ok = total_corrupted == 0;
	printf("stress: %s, %lu passes, %lu pages verified, %lu corrupted, %lu discarded on %u CPUs\n",
	       ok ? "OK" : "FAIL", total_passes, total_verified, total_corrupted, total_discarded, cpus);
	return ok ? 0 : 1;
}
