/* Host check: links a guest's C code (not lib/start.S) into a static Linux process at the same 1 MiB
 * address and emulates the ports it touches: 0xE9 -> stdout, 0xF4 -> exit status (v<<1)|1, fw_cfg
 * (signature + RAM size), UART LSR always ready, 0x604 power-off -> status 125. argv[1..] become the
 * PVH cmdline. Checks the guests' logic only; it cannot run privileged code (pagetables).
 *   make -C guests check */
#include "rt.h"

#define HOST_RAM (256ul << 20)

__attribute__((noreturn)) void kmain(const struct hvm_start_info *si);
__attribute__((noreturn)) void host_main(u64 *sp);

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}
static void host_exit(int status) { sys6(231, status, 0, 0, 0, 0, 0); for (;;) {} }

static u16 fw_sel;
static u32 fw_off;

void outb(u16 port, u8 v)
{
	if (port == PORT_DEBUGCON)
		sys6(1, 1, (long)&v, 1, 0, 0, 0);
	else if (port == PORT_DEBUG_EXIT)
		host_exit((v << 1) | 1);
}

void outw(u16 port, u16 v)
{
	if (port == PORT_FW_CFG_SEL) {
		fw_sel = v;
		fw_off = 0;
	} else if (port == PORT_ACPI_PM && v == 0x2000) {
		host_exit(125);
	}
}

u8 inb(u16 port)
{
	if (port == PORT_FW_CFG_DAT) {
		u32 i = fw_off++;
		if (fw_sel == FW_CFG_SIGNATURE)
			return i < 4 ? (u8)"QEMU"[i] : 0;
		if (fw_sel == FW_CFG_RAM_SIZE)
			return i < 8 ? (u8)(HOST_RAM >> (8 * i)) : 0;
		return 0;
	}
	if (port == PORT_COM1 + 5)
		return 0x60;   /* THRE | TEMT */
	if (port == PORT_DEBUGCON)
		return PORT_DEBUGCON;   /* the debugcon probe: present */
	return 0xff;
}

static struct hvm_start_info si;
static char cmd[1024];

void host_main(u64 *sp)
{
	u64 argc = sp[0];
	char **argv = (char **)(sp + 1);
	u64 n = 0;
	for (u64 a = 1; a < argc; a++)
		for (const char *s = argv[a]; *s && n < sizeof cmd - 2; s++)
			cmd[n++] = *s == ',' ? ' ' : *s, cmd[n] = 0, (s[1] == 0 && a + 1 < argc) ? (cmd[n++] = ' ') : 0;
	/* Guest RAM above the image: 1 MiB-aligned, up to HOST_RAM, mapped lazily. */
	u64 lo = ((u64)__image_end + (1ul << 20) - 1) & ~((1ul << 20) - 1);
	long r = sys6(9, (long)lo, (long)(HOST_RAM - lo), 3 /* RW */, 0x32 /* PRIVATE|ANON|FIXED */ | 0x4000 /* NORESERVE */, -1, 0);
	if (r != (long)lo)
		host_exit(124);
	si.magic = HVM_START_MAGIC;
	si.version = 1;
	si.cmdline_paddr = (u64)cmd;
	kmain(&si);
}

__asm__(".globl host_start\n"
	"host_start:\n"
	"  mov %rsp, %rdi\n"
	"  and $-16, %rsp\n"
	"  call host_main\n"
	"  hlt\n");
