/* timer: the local APIC timer and interrupts. Maps the xAPIC page (0xFEE00000, uncached) into the identity tables,
 * installs an IDT, software-enables the APIC and programs its timer in one-shot, periodic and (where CPUID offers it
 * and the cmdline does not say deadline=0) TSC-deadline mode, waiting for each interrupt with STI; HLT. The handler
 * counts interrupts and records the TSC at each; the checks use only facts true on any time base: the TSC moves
 * forward, a wait of count x divisor bus ticks lasts at least that many TSC ticks (the TSC runs at least as fast as
 * the APIC bus, here and on QEMU TCG), a TSC-deadline interrupt comes at or after its deadline.
 * The TSC-deadline phase prints only its failures (or, with verbose=1, a summary line): QEMU TCG's APIC has no
 * TSC-deadline mode and CPUID says so, and the transcript is the same whether the phase ran or not.
 *
 * cmdline: ticks=N (one-shot initial count at divide 128, default 100000: 12.8 ms of a 1 GHz bus), periods=N (periodic interrupts, default 5),
 *          deadline=0 skips the TSC-deadline phase, verbose=1 prints its summary.
 * Exit 0 when every check passed, 1 otherwise. */
#include "rt.h"

#define APIC_BASE_MSR    0x1B
#define TSC_DEADLINE_MSR 0x6E0
#define APIC_PAGE        0xFEE00000ul
#define APIC_VERSION     0x030
#define APIC_EOI         0x0B0
#define APIC_SVR         0x0F0
#define APIC_ESR         0x280
#define APIC_LVT_TIMER   0x320
#define APIC_LVT_LINT0   0x350
#define APIC_LVT_LINT1   0x360
#define APIC_TIMER_INIT  0x380
#define APIC_TIMER_CUR   0x390
#define APIC_TIMER_DIV   0x3E0
#define LVT_MASKED       (1u << 16)
#define LVT_PERIODIC     (1u << 17)
#define LVT_TSC_DEADLINE (2u << 17)
#define VEC_ONESHOT      0x40
#define VEC_PERIODIC     0x41
#define VEC_DEADLINE     0x42
#define VEC_SPURIOUS     0xFF
#define DIVIDE_16        0x3
#define DIVIDE_128       0xA
#define MAX_RECORDS      64

struct idt_gate {
	u16 offset_low;
	u16 selector;
	u8 ist;
	u8 type_attr;
	u16 offset_mid;
	u32 offset_high;
	u32 reserved;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));
static u64 apic_pd[512] __attribute__((aligned(4096)));

/* Written by the handler (timer_isr in the assembly below). */
volatile u64 irq_count;
volatile u64 irq_vector_sum;
volatile u64 irq_tsc[MAX_RECORDS];

void timer_isr(void);
void spurious_isr(void);

__asm__(
	".text\n"
	".globl timer_isr\n"
	"timer_isr:\n"
	"	push %rax\n"
	"	push %rcx\n"
	"	push %rdx\n"
	"	rdtsc\n"
	"	shl $32, %rdx\n"
	"	or %rdx, %rax\n"
	"	mov irq_count(%rip), %rcx\n"
	"	cmp $" "64" ", %rcx\n"
	"	jae 1f\n"
	"	lea irq_tsc(%rip), %rdx\n"
	"	mov %rax, (%rdx,%rcx,8)\n"
	"1:	incq irq_count(%rip)\n"
	"	mov $0xfee000b0, %eax\n"          /* EOI */
	"	movl $0, (%rax)\n"
	"	pop %rdx\n"
	"	pop %rcx\n"
	"	pop %rax\n"
	"	iretq\n"
	".globl spurious_isr\n"
	"spurious_isr:\n"                   /* no EOI for the spurious vector */
	"	iretq\n");

static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}

static inline void wrmsr(u32 msr, u64 v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}

static inline void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static inline u32 apic_read(u32 reg) { return *(volatile u32 *)(APIC_PAGE + reg); }
static inline void apic_write(u32 reg, u32 v) { *(volatile u32 *)(APIC_PAGE + reg) = v; }

static void set_gate(int vector, void (*handler)(void))
{
	u64 addr = (u64)handler;
	u16 cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	idt[vector] = (struct idt_gate){
		.offset_low = (u16)addr, .selector = cs, .ist = 0, .type_attr = 0x8E,
		.offset_mid = (u16)(addr >> 16), .offset_high = (u32)(addr >> 32), .reserved = 0,
	};
}

static void load_idt(void)
{
	struct { u16 limit; u64 base; } __attribute__((packed)) ptr = { sizeof(idt) - 1, (u64)idt };
	__asm__ volatile("lidt %0" : : "m"(ptr));
}

/* Maps the APIC page with a 2 MiB uncached (PCD|PWT) leaf in the PDPT entry for 3-4 GiB of the live tables. */
static int map_apic_page(void)
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
		pd = apic_pd;
		pdpt[3] = (u64)apic_pd | 0x3;
	}
	pd[(APIC_PAGE >> 21) & 511] = (APIC_PAGE & ~0x1FFFFFul) | 0x83 | 0x18;
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
	return 1;
}

/* Waits with STI; HLT until irq_count reaches n (interrupts are off again on return). */
static void wait_for(u64 n)
{
	while (irq_count < n)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
}

static int failures;
static void check(int ok, const char *what)
{
	if (!ok) {
		printf("timer: FAIL: %s\n", what);
		failures++;
	}
}

static void one_shot(u32 ticks)
{
	irq_count = 0;
	apic_write(APIC_TIMER_DIV, DIVIDE_128);
	apic_write(APIC_LVT_TIMER, VEC_ONESHOT);
	u64 t0 = rdtsc();
	apic_write(APIC_TIMER_INIT, ticks);
	u32 cur = apic_read(APIC_TIMER_CUR);
	check(cur <= ticks, "one-shot: the current count starts at or below the initial count");
	wait_for(1);
	u64 elapsed = irq_tsc[0] - t0;
	check(apic_read(APIC_TIMER_CUR) == 0, "one-shot: the current count is 0 after it fired");
	check(elapsed >= (u64)ticks * 128, "one-shot: the wait lasted at least count x 128 TSC ticks");
	/* A one-shot timer does not fire again. */
	for (int i = 0; i < 2000; i++)
		__asm__ volatile("sti; nop; cli" ::: "memory");
	check(irq_count == 1, "one-shot: exactly one interrupt");
	printf("timer: one-shot, divide 128, count %u: %lu interrupt, current count %u after it\n",
	       ticks, irq_count, apic_read(APIC_TIMER_CUR));
}

static void periodic(u32 ticks, u32 periods)
{
	irq_count = 0;
	apic_write(APIC_TIMER_DIV, DIVIDE_16);
	apic_write(APIC_LVT_TIMER, LVT_PERIODIC | VEC_PERIODIC);
	u64 t0 = rdtsc();
	apic_write(APIC_TIMER_INIT, ticks);
	wait_for(periods);
	apic_write(APIC_TIMER_INIT, 0);          /* stop */
	int increasing = irq_tsc[0] > t0;
	for (u32 i = 1; i < periods && i < MAX_RECORDS; i++)
		increasing &= irq_tsc[i] > irq_tsc[i - 1];
	check(increasing, "periodic: the TSC increases from interrupt to interrupt");
	check(irq_tsc[periods - 1] - t0 >= (u64)ticks * 16 * periods, "periodic: n periods lasted at least n x count x 16 TSC ticks");
	printf("timer: periodic, divide 16, count %u: %lu interrupts, TSC increasing: %s\n",
	       ticks, irq_count, increasing ? "yes" : "no");
}

static void tsc_deadline(int rounds)
{
	apic_write(APIC_LVT_TIMER, LVT_TSC_DEADLINE | VEC_DEADLINE);
	int on_time = 0;
	for (int r = 0; r < rounds; r++) {
		irq_count = 0;
		u64 deadline = rdtsc() + 2000000;
		wrmsr(TSC_DEADLINE_MSR, deadline);
		wait_for(1);
		on_time += irq_tsc[0] >= deadline;
		check(rdmsr(TSC_DEADLINE_MSR) == 0, "tsc-deadline: IA32_TSC_DEADLINE reads 0 after it fired");
	}
	check(on_time == rounds, "tsc-deadline: every interrupt at or after its deadline");
	if (arg_u64("verbose", 0))
		printf("timer: tsc-deadline: %d interrupts, %d at or after their deadline\n", rounds, on_time);
}

int guest_main(void)
{
	u32 a, b, c, d;
	cpuid(1, &a, &b, &c, &d);
	if (!(d & (1u << 9))) {
		puts("timer: no local APIC (CPUID.1:EDX[9])\n");
		return 1;
	}
	u64 base = rdmsr(APIC_BASE_MSR);
	check((base & (1u << 11)) && (base & ~0xFFFul) == APIC_PAGE, "IA32_APIC_BASE: enabled at 0xFEE00000");
	if (!map_apic_page()) {
		puts("timer: cannot map the APIC page\n");
		return 1;
	}

	for (int v = 32; v < 256; v++)
		set_gate(v, timer_isr);
	set_gate(VEC_SPURIOUS, spurious_isr);
	load_idt();

	/* Firmware (SeaBIOS under QEMU) may leave the 8259s routed through LINT0 with the PIT at vector 8: mask both. */
	outb(0x21, 0xFF);
	outb(0xA1, 0xFF);
	apic_write(APIC_SVR, 0x100 | VEC_SPURIOUS);
	apic_write(APIC_LVT_LINT0, LVT_MASKED);
	apic_write(APIC_LVT_LINT1, LVT_MASKED);
	apic_write(APIC_ESR, 0);
	printf("timer: APIC version 0x%x, enabled, spurious vector 0x%x\n", apic_read(APIC_VERSION), apic_read(APIC_SVR) & 0xFF);

	one_shot((u32)arg_u64("ticks", 100000));
	periodic(50000, (u32)arg_u64("periods", 5));
	int deadline_offered = (c >> 24) & 1;
	if (deadline_offered && arg_u64("deadline", 1))
		tsc_deadline(3);

	apic_write(APIC_ESR, 0);
	check(apic_read(APIC_ESR) == 0, "no APIC error");
	apic_write(APIC_LVT_TIMER, LVT_MASKED);
	if (failures) {
		printf("timer: FAIL, %d checks failed\n", failures);
		return 1;
	}
	puts("timer: OK\n");
	return 0;
}
