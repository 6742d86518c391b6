/*
 * Guest entry points. Two ways in, one way on:
 *
 *   pvh_start32  32-bit protected mode, paging off (Xen PVH / QEMU -kernel), EBX = hvm_start_info.
 *                Loads our GDT, points CR3 at the static identity tables below (1 GiB, 2 MiB pages),
 *                turns on PAE, EFER.LME and paging, far-jumps to 64-bit code.
 *   _start64     e_entry: 64-bit long mode with paging already on (VMM built GDT and identity tables,
 *                Firecracker style). RDI = GPA of a hvm_start_info, or 0.
 *
 * Both then reach start64_common: zero .bss, set up the stack, call kmain(start_info).
 */

#define MSR_EFER   0xC0000080
#define EFER_LME   (1 << 8)
#define CR0_PE     (1 << 0)
#define CR0_PG     (1 << 31)
#define CR4_PAE    (1 << 5)
#define CR4_OSFXSR (1 << 9)             /* FXSAVE/FXRSTOR and SSE enabled */
#define CR4_OSXMMEXCPT (1 << 10)        /* unmasked SIMD FP exceptions raise #XM */
#define SEL_CODE64 0x08
#define SEL_DATA   0x10

/* The PVH ELF note: name "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), 4-byte entry address. */
	.pushsection .note.Xen, "a", @note
	.balign 4
	.long 4              /* namesz: "Xen\0" */
	.long 4              /* descsz */
	.long 18             /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.long pvh_start32
	.balign 4
	.popsection

	.section .text.boot32, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	movl  %ebx, %esi                 /* keep start_info; becomes kmain's argument */
	lgdt  gdt_ptr
	movl  $SEL_DATA, %eax
	movl  %eax, %ds
	movl  %eax, %es
	movl  %eax, %ss
	movl  %eax, %fs
	movl  %eax, %gs
	movl  %cr4, %eax
	orl   $CR4_PAE, %eax
	movl  %eax, %cr4
	movl  $boot_pml4, %eax
	movl  %eax, %cr3
	movl  $MSR_EFER, %ecx
	rdmsr
	orl   $EFER_LME, %eax
	wrmsr
	movl  %cr0, %eax
	orl   $(CR0_PG | CR0_PE), %eax
	movl  %eax, %cr0                 /* long mode active (compatibility mode) */
	ljmp  $SEL_CODE64, $pvh_long

	.code64
pvh_long:
	movl  $SEL_DATA, %eax
	movl  %eax, %ds
	movl  %eax, %es
	movl  %eax, %ss
	movl  %eax, %fs
	movl  %eax, %gs
	movl  %esi, %edi                 /* zero-extends start_info into RDI */
	jmp   start64_common

	.section .text.boot64, "ax"
	.globl _start64
_start64:
	cli
	cld
start64_common:
	movq  %cr4, %rax                 /* SSE on: the sse guest is built for it, the others never use it */
	orq   $(CR4_OSFXSR | CR4_OSXMMEXCPT), %rax
	movq  %rax, %cr4
	movq  %rdi, %rdx                 /* boot info survives the bss clear in RDX */
	movq  $__bss_start, %rdi
	movq  $__bss_end, %rcx
	subq  %rdi, %rcx
	xorl  %eax, %eax
	rep stosb                        /* .bss holds the stack, so clear it before the first push */
	movq  $stack_top, %rsp
	xorl  %ebp, %ebp
	movq  %rdx, %rdi
	call  kmain                      /* never returns: kmain calls exit() */
1:	hlt
	jmp   1b

/* GDT: null, 64-bit code (L=1), flat data. Also used by the 64-bit code after the PVH switch. */
	.section .rodata.boot, "a"
	.balign 16
gdt:
	.quad 0
	.quad 0x00af9b000000ffff         /* 0x08: code, DPL 0, L=1 */
	.quad 0x00cf93000000ffff         /* 0x10: data, flat 4 GiB */
gdt_end:
	.balign 8
gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt                        /* 32-bit base: lgdt runs in 32-bit mode */

/* Identity map of the first 1 GiB with 2 MiB pages, built by the assembler so the stub has no loop. */
	.section .data.boot, "aw"
	.balign 4096
	.globl boot_pml4
boot_pml4:
	.quad boot_pdpt + 0x3            /* P | RW */
	.fill 511, 8, 0
boot_pdpt:
	.quad boot_pd + 0x3
	.fill 511, 8, 0
boot_pd:
	.set i, 0
	.rept 512
	.quad (i << 21) + 0x83           /* P | RW | PS */
	.set i, i + 1
	.endr

	.section .bss.stack, "aw", @nobits
	.balign 4096
	.globl stack_bottom
stack_bottom:
	.skip 65536
	.globl stack_top
stack_top:
