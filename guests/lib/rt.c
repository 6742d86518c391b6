/* Runtime: console (0xE9 + COM1), exit (0xF4), fw_cfg, PVH cmdline, printf, mem*. */
#include "rt.h"
#include <stdarg.h>

static const struct hvm_start_info *boot_info;
static const char *boot_cmdline = "";
static int use_e9 = 1, use_uart = 1;

/* ---------- console ---------- */

static void uart_init(void)
{
	outb(PORT_COM1 + 1, 0x00);   /* IER: no interrupts */
	outb(PORT_COM1 + 3, 0x80);   /* LCR: DLAB */
	outb(PORT_COM1 + 0, 0x01);   /* DLL: 115200 baud */
	outb(PORT_COM1 + 1, 0x00);   /* DLM */
	outb(PORT_COM1 + 3, 0x03);   /* LCR: 8N1 */
	outb(PORT_COM1 + 2, 0xC7);   /* FCR: FIFO on, cleared */
	outb(PORT_COM1 + 4, 0x03);   /* MCR: DTR | RTS */
}

static void uart_putc(char c)
{
	/* Wait for THRE (LSR bit 5); bounded, and an absent UART reads 0xFF, so this never hangs. */
	for (int i = 0; i < 100000 && !(inb(PORT_COM1 + 5) & 0x20); i++)
		__asm__ volatile("pause");
	outb(PORT_COM1, (u8)c);
}

void putc(char c)
{
	if (use_e9)
		outb(PORT_DEBUGCON, (u8)c);
	if (use_uart) {
		if (c == '\n')
			uart_putc('\r');
		uart_putc(c);
	}
}

void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

/* ---------- exit ---------- */

void exit(int code)
{
	outb(PORT_DEBUG_EXIT, (u8)code);     /* QEMU/our VMM stop here with status (code<<1)|1 */
	outw(PORT_ACPI_PM, 0x2000);          /* no exit device: ask for power-off */
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* ---------- printf: %d %i %u %x %X %p %s %c %%, with l/ll/z, width, '0' and '-' flags ---------- */

static void put_padded(const char *s, int len, int width, int left, char pad)
{
	if (!left)
		for (int i = len; i < width; i++)
			putc(pad);
	for (int i = 0; i < len; i++)
		putc(s[i]);
	if (left)
		for (int i = len; i < width; i++)
			putc(' ');
}

static int fmt_u64(char *buf, u64 v, unsigned base, int upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	for (int i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			putc(*p);
			continue;
		}
		p++;
		int left = 0, width = 0, lng = 0;
		char pad = ' ';
		for (;; p++) {
			if (*p == '-') left = 1;
			else if (*p == '0') pad = '0';
			else break;
		}
		while (*p >= '0' && *p <= '9')
			width = width * 10 + (*p++ - '0');
		while (*p == 'l' || *p == 'z') {
			lng = 1;
			p++;
		}
		char buf[24];
		int n;
		switch (*p) {
		case 'd': case 'i': {
			i64 v = lng ? va_arg(ap, i64) : va_arg(ap, int);
			int neg = v < 0;
			n = fmt_u64(buf + neg, neg ? -(u64)v : (u64)v, 10, 0) + neg;
			if (neg)
				buf[0] = '-';
			put_padded(buf, n, width, left, pad);
			break;
		}
		case 'u': case 'x': case 'X': {
			u64 v = lng ? va_arg(ap, u64) : va_arg(ap, unsigned);
			n = fmt_u64(buf, v, *p == 'u' ? 10 : 16, *p == 'X');
			put_padded(buf, n, width, left, pad);
			break;
		}
		case 'p':
			putc('0');
			putc('x');
			n = fmt_u64(buf, (u64)va_arg(ap, void *), 16, 0);
			put_padded(buf, n, width, left, pad);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			n = 0;
			while (s[n])
				n++;
			put_padded(s, n, width, left, ' ');
			break;
		}
		case 'c':
			buf[0] = (char)va_arg(ap, int);
			put_padded(buf, 1, width, left, ' ');
			break;
		case '%':
			putc('%');
			break;
		case 0:
			p--;
			break;
		default:
			putc('%');
			putc(*p);
			break;
		}
	}
	va_end(ap);
	return 0;
}

/* ---------- fw_cfg (legacy I/O interface) ---------- */

static void fw_cfg_select(u16 key) { outw(PORT_FW_CFG_SEL, key); }

int fw_cfg_present(void)
{
	fw_cfg_select(FW_CFG_SIGNATURE);
	return inb(PORT_FW_CFG_DAT) == 'Q' && inb(PORT_FW_CFG_DAT) == 'E' &&
	       inb(PORT_FW_CFG_DAT) == 'M' && inb(PORT_FW_CFG_DAT) == 'U';
}

u64 fw_cfg_read_u64(u16 key)
{
	fw_cfg_select(key);
	u64 v = 0;
	for (int i = 0; i < 8; i++)
		v |= (u64)inb(PORT_FW_CFG_DAT) << (8 * i);
	return v;
}

u64 ram_size(void)
{
	if (fw_cfg_present())
		return fw_cfg_read_u64(FW_CFG_RAM_SIZE);
	if (boot_info && boot_info->version >= 1 && boot_info->memmap_paddr) {
		const struct hvm_memmap_entry *e = (const void *)boot_info->memmap_paddr;
		u64 top = 0;
		for (u32 i = 0; i < boot_info->memmap_entries; i++)
			if (e[i].type == 1 && e[i].addr + e[i].size > top)
				top = e[i].addr + e[i].size;
		return top;
	}
	return 0;
}

/* ---------- command line ---------- */

const char *cmdline(void) { return boot_cmdline; }

const struct hvm_start_info *start_info(void) { return boot_info; }

/* Find "key=" at the start of a space-separated word; returns the value or NULL. */
static const char *arg_find(const char *key)
{
	const char *p = boot_cmdline;
	while (*p) {
		while (*p == ' ')
			p++;
		const char *k = key, *w = p;
		while (*k && *w == *k) {
			k++;
			w++;
		}
		if (!*k && *w == '=')
			return w + 1;
		while (*p && *p != ' ')
			p++;
	}
	return NULL;
}

u64 arg_u64(const char *key, u64 def)
{
	const char *v = arg_find(key);
	if (!v || !*v || *v == ' ')
		return def;
	u64 r = 0;
	unsigned base = 10;
	if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		v += 2;
	}
	for (;; v++) {
		unsigned d;
		if (*v >= '0' && *v <= '9') d = (unsigned)(*v - '0');
		else if (base == 16 && *v >= 'a' && *v <= 'f') d = (unsigned)(*v - 'a' + 10);
		else if (base == 16 && *v >= 'A' && *v <= 'F') d = (unsigned)(*v - 'A' + 10);
		else break;
		r = r * base + d;
	}
	return r;
}

int arg_is(const char *key, const char *val)
{
	const char *v = arg_find(key);
	if (!v)
		return 0;
	while (*val && *v == *val) {
		v++;
		val++;
	}
	return !*val && (*v == 0 || *v == ' ');
}

/* ---------- entry from start.S ---------- */

__attribute__((noreturn)) void kmain(const struct hvm_start_info *si);

void kmain(const struct hvm_start_info *si)
{
	/* Accept the pointer only if it is plausible: identity-mapped (< 1 GiB), aligned, right magic. */
	if (si && (u64)si < (1ul << 30) && !((u64)si & 3) && si->magic == HVM_START_MAGIC) {
		boot_info = si;
		if (si->cmdline_paddr && si->cmdline_paddr < (1ul << 30))
			boot_cmdline = (const char *)si->cmdline_paddr;
	}
	/* One console, not two copies: console=e9|uart|both chooses; by default the debugcon port if it
	 * answers its probe (reads back 0xE9, as QEMU's -debugcon and our VMM do), else COM1. */
	if (arg_is("console", "e9"))
		use_uart = 0;
	else if (arg_is("console", "uart"))
		use_e9 = 0;
	else if (!arg_is("console", "both")) {
		if (inb(PORT_DEBUGCON) == PORT_DEBUGCON)
			use_uart = 0;
		else
			use_e9 = 0;
	}
	if (use_uart)
		uart_init();
	exit(guest_main());
}

/* ---------- mem* (gcc may emit calls to these even when freestanding) ---------- */

void *memset(void *d, int c, size_t n)
{
	void *r = d;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return r;
}

void *memcpy(void *d, const void *s, size_t n)
{
	void *r = d;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return r;
}

void *memmove(void *d, const void *s, size_t n)
{
	u8 *dp = d;
	const u8 *sp = s;
	if (dp <= sp || dp >= sp + n)
		return memcpy(d, s, n);
	while (n--)
		dp[n] = sp[n];
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}
