/* smpboot.h: starting application processors, shared by the SMP guests (smp, stress). Header-only: each guest
 * includes it once and gets its own copy of the trampoline and the helpers.
 *
 *   trampoline copied to TRAMPOLINE (SIPI vector TRAMPOLINE >> 12): 16-bit real mode -> 32-bit protected mode
 *              -> long mode on the boot page tables, each AP on its own stack, into the entry given to start_aps.
 *   local APIC xAPIC MMIO at APIC_BASE (the guest maps it).
 *   barrier()  a sense-reversing barrier over smp_cpu_count CPUs (set it before the first barrier). */
#ifndef GUEST_SMPBOOT_H
#define GUEST_SMPBOOT_H
#include "rt.h"

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
#define SPIN_LIMIT 200000000ul

static u8 ap_stacks[MAX_CPUS][16384] __attribute__((aligned(16)));
extern char tramp_start[], tramp_end[];
/* Written by the boot CPU before each start-up, read by the trampoline at its final address. */
extern u64 tramp_stack, tramp_entry;

static volatile u32 started;          /* APs that reached their entry (each AP's entry counts itself) */
static volatile u32 smp_cpu_count;    /* CPUs taking part in barrier() */
static volatile u32 barrier_count, barrier_generation;

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
	if (__atomic_add_fetch(&barrier_count, 1, __ATOMIC_ACQ_REL) == smp_cpu_count) {
		barrier_count = 0;
		__atomic_store_n(&barrier_generation, generation + 1, __ATOMIC_RELEASE);
	} else {
		while (__atomic_load_n(&barrier_generation, __ATOMIC_ACQUIRE) == generation)
			pause();
	}
}

/* Starts CPUs 1..cpus-1 one after the other, each into entry (which must count itself in started); a failure is
 * printed as "NAME: ...". */
static int start_aps(const char *name, u32 cpus, void (*entry)(void))
{
	memcpy((void *)TRAMPOLINE, tramp_start, (size_t)(tramp_end - tramp_start));
	u64 *stack = (u64 *)(TRAMPOLINE + ((u64)&tramp_stack - (u64)tramp_start));
	u64 *entry_slot = (u64 *)(TRAMPOLINE + ((u64)&tramp_entry - (u64)tramp_start));
	*entry_slot = (u64)entry;
	for (u32 id = 1; id < cpus; id++) {
		*(volatile u64 *)stack = (u64)&ap_stacks[id][sizeof ap_stacks[id]];
		u32 before = started;
		if (!send_ipi(id, ICR_INIT) || !send_ipi(id, ICR_STARTUP | (TRAMPOLINE >> 12))
		    || !send_ipi(id, ICR_STARTUP | (TRAMPOLINE >> 12))) {
			printf("%s: the IPI to CPU %u was never sent\n", name, id);
			return 0;
		}
		u64 n = 0;
		while (__atomic_load_n(&started, __ATOMIC_ACQUIRE) == before && n++ < SPIN_LIMIT)
			pause();
		if (started == before) {
			printf("%s: CPU %u did not start\n", name, id);
			return 0;
		}
	}
	return 1;
}

#endif
