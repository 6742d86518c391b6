/* smp: start every application processor with INIT-SIPI-SIPI, split a memory test across all CPUs, then run a
 * TLB shootdown loop in which the boot CPU rewrites a PTE and IPIs the others, which INVLPG and check they see
 * the new page.
 *
 *   CPUs       fw_cfg NB_CPUS (QEMU -smp N, hv --smp N); APIC ids 0..N-1; the boot CPU is id 0.
 *   trampoline copied to TRAMPOLINE (SIPI vector TRAMPOLINE >> 12): 16-bit real mode -> 32-bit protected mode
 *              -> long mode on the boot page tables, each AP on its own stack, into ap_main.
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
#include "rt.h"

#define MIB (1ul << 20)
#define PAGE 4096ul
#define MAX_CPUS 64
#define TRAMPOLINE 0x8000ul
#define APIC_BASE 0xFEE00000ul
#define APIC_ID 0x20
#define APIC_EOI 0xB0
#define APIC_SVR 0xF0
#define APIC_ICR_LOW 0x300
#define APIC_ICR_HIGH 0x310
#define ICR_BUSY (1u << 12)
#define ICR_INIT 0x4500u              /* INIT, level assert, edge */
#define ICR_STARTUP 0x4600u           /* SIPI | vector */
#define ICR_FIXED_ALL_BUT_SELF 0xC4000u /* fixed, assert, shorthand all excluding self */
#define IPI_VECTOR 0xF0
#define VA_TEST 0x40000000ul          /* 1 GiB: PML4[0], PDPT[1] */
#define PTE_P 0x001ul
#define PTE_RW 0x002ul
#define PTE_PWT 0x008ul
#define PTE_PCD 0x010ul
#define PTE_PS 0x080ul
#define IDENTITY_LIMIT (1ul << 30)
#define SPIN_LIMIT 200000000ul

typedef u64 table_t[512] __attribute__((aligned(4096)));
static table_t apic_pd, test_pd, test_pt;
static u8 test_frames[2][PAGE] __attribute__((aligned(4096)));
static u8 ap_stacks[MAX_CPUS][16384] __attribute__((aligned(16)));

struct idt_gate { u16 off0, sel; u8 ist, type; u16 off1; u32 off2, zero; } __attribute__((packed));
static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct { u16 limit; u64 base; } __attribute__((packed)) idt_ptr;

extern u64 boot_pml4[512];
extern char tramp_start[], tramp_end[];
/* Written by the boot CPU before each start-up, read by the trampoline at its final address. */
extern u64 tramp_stack, tramp_entry;

static volatile u32 started;          /* APs that reached ap_main */
static volatile u32 cpu_count;
static volatile u32 barrier_count, barrier_generation;
static volatile u64 verified_words, bad_words;
static volatile u64 shoot_tag, shoot_acks, shoot_stale;
static volatile u32 shoot_done, parked;
static u64 region_start, region_words, seed;

/* The trampoline, assembled into .rodata and copied to TRAMPOLINE; its labels are used as offsets from
 * tramp_start, so it runs wherever CS points (CS = TRAMPOLINE >> 4, IP = 0). GDT: 0x08 64-bit code, 0x10 flat
 * data (as the boot GDT, so interrupt gates with selector 0x08 work on every CPU), 0x18 32-bit code. */
__asm__(
	"	.section .rodata.trampoline, \"a\"\n"
	"	.balign 16\n"
	"	.globl tramp_start, tramp_end, tramp_stack, tramp_entry\n"
	"	.code16\n"
	"tramp_start:\n"
	"	cli\n"
	"	cld\n"
	"	movw %cs, %ax\n"
	"	movw %ax, %ds\n"
	"	lgdtl tramp_gdt_ptr - tramp_start\n"
	"	movl %cr0, %eax\n"
	"	orl $1, %eax\n"
	"	movl %eax, %cr0\n"
	"	ljmpl $0x18, $(0x8000 + tramp32 - tramp_start)\n"
	"	.code32\n"
	"tramp32:\n"
	"	movl $0x10, %eax\n"
	"	movl %eax, %ds\n"
	"	movl %eax, %es\n"
	"	movl %eax, %ss\n"
	"	movl %cr4, %eax\n"
	"	orl $0x20, %eax\n"                 /* PAE */
	"	movl %eax, %cr4\n"
	"	movl $boot_pml4, %eax\n"
	"	movl %eax, %cr3\n"
	"	movl $0xC0000080, %ecx\n"
	"	rdmsr\n"
	"	orl $0x100, %eax\n"                /* EFER.LME */
	"	wrmsr\n"
	"	movl %cr0, %eax\n"
	"	orl $0x80000001, %eax\n"
	"	movl %eax, %cr0\n"
	"	ljmpl $0x08, $(0x8000 + tramp64 - tramp_start)\n"
	"	.code64\n"
	"tramp64:\n"
	"	movl $0x10, %eax\n"
	"	movl %eax, %ds\n"
	"	movl %eax, %es\n"
	"	movl %eax, %ss\n"
	"	movl %eax, %fs\n"
	"	movl %eax, %gs\n"
	"	movq (0x8000 + tramp_stack - tramp_start), %rsp\n"
	"	movq (0x8000 + tramp_entry - tramp_start), %rax\n"
	"	xorl %ebp, %ebp\n"
	"	callq *%rax\n"
	"1:	cli\n"
	"	hlt\n"
	"	jmp 1b\n"
	"	.balign 8\n"
	"tramp_gdt:\n"
	"	.quad 0\n"
	"	.quad 0x00af9a000000ffff\n"
	"	.quad 0x00cf92000000ffff\n"
	"	.quad 0x00cf9a000000ffff\n"
	"tramp_gdt_ptr:\n"
	"	.word 31\n"
	"	.long 0x8000 + tramp_gdt - tramp_start\n"
	"	.balign 8\n"
	"tramp_stack:\n"
	"	.quad 0\n"
	"tramp_entry:\n"
	"	.quad 0\n"
	"tramp_end:\n"
	"	.text\n");

static inline u32 apic_read(u32 reg) { return *(volatile u32 *)(APIC_BASE + reg); }
static inline void apic_write(u32 reg, u32 v) { *(volatile u32 *)(APIC_BASE + reg) = v; }
static inline void pause(void) { __asm__ volatile("pause"); }
static inline void invlpg(u64 va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }
static inline void write_cr3(u64 v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline u32 this_cpu(void) { return apic_read(APIC_ID) >> 24; }

static int send_ipi(u32 dest, u32 icr)
{
	apic_write(APIC_ICR_HIGH, dest << 24);
	apic_write(APIC_ICR_LOW, icr);
	for (u64 n = 0; n < SPIN_LIMIT; n++)
		if (!(apic_read(APIC_ICR_LOW) & ICR_BUSY))
			return 1;
	return 0;
}

/* A sense-reversing barrier over every started CPU. */
static void barrier(void)
{
	u32 generation = barrier_generation;
	if (__atomic_add_fetch(&barrier_count, 1, __ATOMIC_ACQ_REL) == cpu_count) {
		barrier_count = 0;
		__atomic_store_n(&barrier_generation, generation + 1, __ATOMIC_RELEASE);
	} else {
		while (__atomic_load_n(&barrier_generation, __ATOMIC_ACQUIRE) == generation)
			pause();
	}
}

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

static int start_aps(u32 cpus)
{
	memcpy((void *)TRAMPOLINE, tramp_start, (size_t)(tramp_end - tramp_start));
	u64 *stack = (u64 *)(TRAMPOLINE + ((u64)&tramp_stack - (u64)tramp_start));
	u64 *entry = (u64 *)(TRAMPOLINE + ((u64)&tramp_entry - (u64)tramp_start));
	*entry = (u64)ap_main;
	for (u32 id = 1; id < cpus; id++) {
		*(volatile u64 *)stack = (u64)&ap_stacks[id][sizeof ap_stacks[id]];
		u32 before = started;
		if (!send_ipi(id, ICR_INIT) || !send_ipi(id, ICR_STARTUP | (TRAMPOLINE >> 12))
		    || !send_ipi(id, ICR_STARTUP | (TRAMPOLINE >> 12))) {
			printf("smp: the IPI to CPU %u was never sent\n", id);
			return 0;
		}
		u64 n = 0;
		while (__atomic_load_n(&started, __ATOMIC_ACQUIRE) == before && n++ < SPIN_LIMIT)
			pause();
		if (started == before) {
			printf("smp: CPU %u did not start\n", id);
			return 0;
		}
	}
	return 1;
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
	if (!start_aps(cpus))
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
