/* Tiny freestanding runtime shared by every guest. */
#ifndef GUEST_RT_H
#define GUEST_RT_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;
typedef unsigned long size_t;
#define NULL ((void *)0)

/* ---- port I/O ---- */
#ifndef GUEST_HOST_CHECK
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
#else   /* tests/hostcheck.c: the same C run as a Linux process, with the ports emulated */
void outb(u16 port, u8 v);
void outw(u16 port, u16 v);
u8 inb(u16 port);
#endif

/* ---- devices the guests use ---- */
#define PORT_DEBUGCON   0xE9    /* QEMU debugcon: one byte per character */
#define PORT_COM1       0x3F8   /* 16550 UART */
#define PORT_DEBUG_EXIT 0xF4    /* QEMU isa-debug-exit: host status = (value << 1) | 1 */
#define PORT_ACPI_PM    0x604   /* QEMU power-off fallback: outw 0x2000 */
#define PORT_FW_CFG_SEL 0x510
#define PORT_FW_CFG_DAT 0x511
#define FW_CFG_SIGNATURE 0x0000 /* "QEMU" */
#define FW_CFG_RAM_SIZE  0x0003 /* u64 little-endian, bytes */
#define FW_CFG_NB_CPUS   0x0005 /* u16 */

/* ---- PVH boot info (xen/include/public/arch-x86/hvm/start_info.h) ---- */
#define HVM_START_MAGIC 0x336ec578u
struct hvm_start_info {
	u32 magic;
	u32 version;
	u32 flags;
	u32 nr_modules;
	u64 modlist_paddr;
	u64 cmdline_paddr;
	u64 rsdp_paddr;
	u64 memmap_paddr;     /* version >= 1 */
	u32 memmap_entries;   /* version >= 1 */
	u32 reserved;
};
struct hvm_memmap_entry {
	u64 addr;
	u64 size;
	u32 type;             /* 1 = RAM */
	u32 reserved;
};

/* ---- runtime ---- */
void putc(char c);
void puts(const char *s);                 /* no newline added */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void exit(int code);

const char *cmdline(void);                /* "" when the VMM gave none */
const struct hvm_start_info *start_info(void);   /* NULL when the VMM gave none */
u64 arg_u64(const char *key, u64 def);    /* key=123 or key=0x7b in the cmdline */
int arg_is(const char *key, const char *val);   /* the cmdline has the word key=val */
int fw_cfg_present(void);
u64 fw_cfg_read_u64(u16 key);
u64 ram_size(void);                       /* fw_cfg, else PVH memmap, else 0 (unknown) */

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

extern char __image_start[], __image_end[];

/* Every guest defines this; its return value becomes the exit code. */
int guest_main(void);

/* Time-stamp counter. Our interpreter counts retired instructions (deterministic); QEMU TCG and KVM
 * count host time. Print it only on lines that tests do not compare digit for digit. */
static inline u64 rdtsc(void)
{
	u32 lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}

static inline u64 xorshift64(u64 *s)
{
	u64 x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

#endif
