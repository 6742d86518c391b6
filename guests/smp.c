/* smp: start every application processor with INIT-SIPI-SIPI, split a memory test across all CPUs, then run a
 * TLB shootdown loop in which the boot CPU rewrites a PTE and IPIs the others, which INVLPG and check they see
 * the new page.
 *
 *   CPUs       fw_cfg NB_CPUS (QEMU -smp N, hv --smp N); APIC ids 0..N-1; the boot CPU is id 0.
 *   start-up   lib/smpboot.h (the trampoline, INIT-SIPI-SIPI, the barrier); each AP enters ap_main.
 *   local APIC xAPIC MMIO at 0xFEE00000, mapped here with a 2 MiB uncached page.
 *   memtest    mib=N MiB after the image (default 8): CPU k fills part k, then verifies part k+1 (another
 *              CPU's writes), so every word crosses CPUs once.
 *   shootdown  rounds=R (default 200): a page at VA_TEST maps alternately to two frames whose first word holds
 *              the round's tag; every AP must read the new tag after its INVLPG, in its IPI handler.
 *   hang=1     after the report, halt the boot CPU with interrupts off instead of exiting: every CPU is then
 *              halted with nothing that can wake it (hv stops such a VM with exit status 5; QEMU hangs).
 *
 * Prints the same lines under QEMU and hv (no timings). Exit 0 when every check passes, 1 otherwise, 2 when the
 * memory does not fit or the machine has one CPU. */
#include "smpboot.h"

#define MIB (1ul << 20)
#define PAGE 4096ul
#define IPI_VECTOR 0xF0
#define VA_TEST 0x40000000ul          /* 1 GiB: PML4[0], PDPT[1] */
#define PTE_P 0x001ul
#define PTE_RW 0x002ul
#define PTE_PWT 0x008ul
#define PTE_PCD 0x010ul
#define PTE_PS 0x080ul
#define IDENTITY_LIMIT (1ul << 30)

typedef u64 table_t[512] __attribute__((aligned(4096)));
static table_t apic_pd, test_pd, test_pt;
static u8 test_frames[2][PAGE] __attribute__((aligned(4096)));

struct idt_gate { u16 off0, sel; u8 ist, type; u16 off1; u32 off2, zero; } __attribute__((packed));
static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct { u16 limit; u64 base; } __attribute__((packed)) idt_ptr;

extern u64 boot_pml4[512];

static volatile u32 cpu_count;
static volatile u64 verified_words, bad_words;
static volatile u64 shoot_tag, shoot_acks, shoot_stale;
static volatile u32 shoot_done, parked;
static u64 region_start, region_words, seed;

static inline void invlpg(u64 va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }
static inline void write_cr3(u64 v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }

static u64 pattern(u64 i) { return (i * 0x9E3779B97F4A7C15ul) ^ (seed + (i >> 9)); }

static void memtest_part(u32 cpu)
{
	u64 per = region_words / cpu_count;
	volatile u64 *p = (volatile u64 *)region_start;
	u64 from = per * cpu, to = cpu == cpu_count - 1 ? region_words : from + per;
	for (u64 i = from; i < to; i++)
		p[i] = pattern(i);
	barrier();
	u32 other = (cpu + 1) % cpu_count;
	from = per * other;
	to = other == cpu_count - 1 ? region_words : from + per;
	u64 bad = 0;
	for (u64 i = from; i < to; i++)
		if (p[i] != pattern(i))
			bad++;
	__atomic_add_fetch(&verified_words, to - from, __ATOMIC_RELAXED);
	__atomic_add_fetch(&bad_words, bad, __ATOMIC_RELAXED);
	barrier();
}

struct interrupt_frame;
__attribute__((interrupt)) static void shootdown_ipi(struct interrupt_frame *frame)
{
	(void)frame;
	invlpg(VA_TEST);
	if (*(volatile u64 *)VA_TEST != shoot_tag)
		__atomic_add_fetch(&shoot_stale, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&shoot_acks, 1, __ATOMIC_RELEASE);
	apic_write(APIC_EOI, 0);
}

static void set_gate(int vector, void (*handler)(struct interrupt_frame *))
{
	u64 a = (u64)handler;
	idt[vector] = (struct idt_gate){ (u16)a, 0x08, 0, 0x8E, (u16)(a >> 16), (u32)(a >> 32), 0 };
}

static void load_idt(void) { __asm__ volatile("lidt %0" : : "m"(idt_ptr)); }

static void ap_main(void)
{
	u32 cpu = this_cpu();
	load_idt();
	apic_write(APIC_SVR, 0x1FF);
	__atomic_add_fetch(&started, 1, __ATOMIC_RELEASE);
	barrier();                          /* every AP started */
	memtest_part(cpu);
	for (;;) {                          /* STI;HLT: no interrupt slips in between the check and the halt */
		__asm__ volatile("cli" : : : "memory");
		if (__atomic_load_n(&shoot_done, __ATOMIC_ACQUIRE))
			break;
		__asm__ volatile("sti; hlt" : : : "memory");
	}
	__atomic_add_fetch(&parked, 1, __ATOMIC_RELEASE);
	for (;;)
		__asm__ volatile("hlt");
}

static void map_apic_and_test_page(void)
{
	u64 *pdpt = (u64 *)(boot_pml4[0] & ~0xFFFul);
	apic_pd[(APIC_BASE >> 21) & 511] = APIC_BASE | PTE_P | PTE_RW | PTE_PS | PTE_PCD | PTE_PWT;
	pdpt[(APIC_BASE >> 30) & 511] = (u64)apic_pd | PTE_P | PTE_RW;
	test_pd[0] = (u64)test_pt | PTE_P | PTE_RW;
	pdpt[(VA_TEST >> 30) & 511] = (u64)test_pd | PTE_P | PTE_RW;
	test_pt[0] = (u64)test_frames[0] | PTE_P | PTE_RW;
	write_cr3((u64)boot_pml4);          /* the 64-bit entry may arrive on the loader's tables; the APs use these */
}

static u64 shootdown(u64 rounds)
{
	volatile u64 *pte = &test_pt[0];
	u64 waits_exceeded = 0;
	for (u64 r = 1; r <= rounds; r++) {
		u8 *frame = test_frames[r & 1];
		*(volatile u64 *)frame = r;       /* the new page holds the round's tag */
		shoot_tag = r;
		*pte = (u64)frame | PTE_P | PTE_RW;
		invlpg(VA_TEST);
		if (*(volatile u64 *)VA_TEST != r)
			__atomic_add_fetch(&shoot_stale, 1, __ATOMIC_RELAXED);
		u64 want = r * (cpu_count - 1);
		send_ipi(0, ICR_FIXED_ALL_BUT_SELF | IPI_VECTOR);
		u64 n = 0;
		while (__atomic_load_n(&shoot_acks, __ATOMIC_ACQUIRE) < want && n++ < SPIN_LIMIT)
			pause();
		if (shoot_acks < want) {
			waits_exceeded++;
			break;
		}
	}
	return waits_exceeded;
}

int guest_main(void)
{
	u32 cpus = fw_cfg_present() ? (u32)(fw_cfg_read_u64(FW_CFG_NB_CPUS) & 0xFFFF) : 1;
	u64 mib = arg_u64("mib", 8);
	u64 rounds = arg_u64("rounds", 200);
	seed = arg_u64("seed", 0x5EED);
	printf("smp: %u CPUs\n", cpus);
	if (cpus < 2 || cpus > MAX_CPUS) {
		printf("smp: needs 2 to %u CPUs\n", MAX_CPUS);
		return 2;
	}
	region_start = ((u64)__image_end + MIB - 1) & ~(MIB - 1);
	u64 end = region_start + mib * MIB;
	u64 ram = ram_size();
	if (end > IDENTITY_LIMIT || (ram && end > ram)) {
		printf("smp: region does not fit\n");
		return 2;
	}
	region_words = (end - region_start) / 8;

	map_apic_and_test_page();
	set_gate(IPI_VECTOR, shootdown_ipi);
	idt_ptr.limit = sizeof idt - 1;
	idt_ptr.base = (u64)idt;
	load_idt();
	apic_write(APIC_SVR, 0x1FF);
	if (this_cpu() != 0) {
		printf("smp: the boot CPU's APIC id is %u, not 0\n", this_cpu());
		return 1;
	}

	cpu_count = cpus;
	smp_cpu_count = cpus;
	if (!start_aps("smp", cpus, ap_main))
		return 1;
	printf("smp: %u application processors started\n", started);
	barrier();

	memtest_part(0);
	printf("smp: memtest %lu MiB across %u CPUs: %lu words verified, %lu bad\n", mib, cpus, verified_words, bad_words);

	u64 timeouts = shootdown(rounds);
	__atomic_store_n(&shoot_done, 1, __ATOMIC_RELEASE);
	send_ipi(0, ICR_FIXED_ALL_BUT_SELF | IPI_VECTOR);   /* wake the APs from HLT so they see shoot_done */
	for (u64 n = 0; __atomic_load_n(&parked, __ATOMIC_ACQUIRE) < cpus - 1 && n < SPIN_LIMIT; n++)
		pause();
	printf("smp: shootdown %lu rounds to %u CPUs: %lu stale reads, %lu timeouts\n", rounds, cpus - 1, shoot_stale, timeouts);

	int ok = bad_words == 0 && verified_words == region_words && shoot_stale == 0 && timeouts == 0;
	printf("smp: %s\n", ok ? "OK" : "FAIL");
	if (arg_u64("hang", 0))
		for (;;)
			__asm__ volatile("cli; hlt");
	return ok ? 0 : 1;
}
