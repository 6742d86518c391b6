/* Test-only trampoline for the 64-bit e_entry path under QEMU, which itself always uses the PVH note.
 * Linked at 448 MiB (see the Makefile's qemu-check; qemucheck.sh gives the VM 512 MiB), above the RAM
 * every case uses (workingset's default sets end at 74 MiB): its page tables stay the guest's CR3. It
 * boots through its own PVH stub into long mode with the 1 GiB identity map, then jumps to the guest's
 * e_entry (cmdline entry=0x...) with RDI = the same start_info: exactly the state a direct-start VMM
 * gives. The guest itself is loaded by `-device loader,file=build/NAME.elf`. */
#include "rt.h"

int guest_main(void)
{
	u64 entry = arg_u64("entry", 0);
	if (!entry) {
		puts("direct64: no entry=0x... on the cmdline\n");
		return 3;
	}
	__asm__ volatile("mov %0, %%rdi\n\tjmp *%1" : : "r"(start_info()), "r"(entry) : "rdi", "memory");
	__builtin_unreachable();
}
