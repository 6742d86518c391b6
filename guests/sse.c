/* sse: an SSE2 workload. The only guest built with -msse2 (see the Makefile), so gcc -O2 vectorises its
 * loops and copies structs with 16-byte moves: integer lanes (add, saturating add, min/max, multiply, shifts,
 * compares), memcpy-style block copies, single and double arithmetic with sqrt, min/max and conversions.
 * cmdline: n=N (default 4096, the array length, a multiple of 16 up to 65536), rounds=R (default 4).
 * Prints one checksum line per kernel (floats as their bit patterns, so any rounding difference shows) and
 * "sse: OK"; exits 2 on a bad n. start.S turns on CR4.OSFXSR/OSXMMEXCPT for every guest. */
#include "rt.h"

#define MAX_N 65536

static u8 a8[MAX_N] __attribute__((aligned(16)));
static u8 b8[MAX_N] __attribute__((aligned(16)));
static u8 c8[MAX_N] __attribute__((aligned(16)));
static u16 a16[MAX_N] __attribute__((aligned(16)));
static u32 a32[MAX_N] __attribute__((aligned(16)));
static u32 b32[MAX_N] __attribute__((aligned(16)));
static float fa[MAX_N] __attribute__((aligned(16)));
static float fb[MAX_N] __attribute__((aligned(16)));
static double da[MAX_N] __attribute__((aligned(16)));

struct record { u64 key; u32 a, b; float f[4]; double d[2]; };
static struct record records[256];
static struct record copies[256];

static u32 seed = 12345;
static u32 next(void)
{
	seed = seed * 1103515245u + 12345u;
	return seed >> 8;
}

static u64 mix(u64 h, u64 v)
{
	h ^= v;
	h *= 0x100000001b3ul;
	return h ^ (h >> 29);
}

static u32 bits_of(float f) { u32 u; __builtin_memcpy(&u, &f, 4); return u; }
static u64 bits_of_d(double d) { u64 u; __builtin_memcpy(&u, &d, 8); return u; }

static u64 integer_lanes(u64 n)
{
	for (u64 i = 0; i < n; i++) {
		unsigned s = a8[i] + b8[i];
		c8[i] = s > 255 ? 255 : (u8)s;                 /* paddusb */
	}
	for (u64 i = 0; i < n; i++)
		a8[i] = a8[i] < c8[i] ? a8[i] : c8[i];            /* pminub */
	for (u64 i = 0; i < n; i++)
		b8[i] = (u8)(b8[i] > a8[i] ? b8[i] : a8[i]);      /* pmaxub */
	for (u64 i = 0; i < n; i++)
		a16[i] = (u16)(a16[i] * 3 + (a16[i] >> 2));        /* pmullw, psrlw */
	for (u64 i = 0; i < n; i++)
		a32[i] = (a32[i] << 3) ^ (b32[i] >> 5) ^ (u32)((int)b32[i] >> 7);   /* pslld, psrld, psrad, pxor */
	for (u64 i = 0; i < n; i++)
		b32[i] = b32[i] + a32[i] - (a32[i] == b32[i] ? 1u : 0u);   /* paddd, psubd, pcmpeqd */
	u32 sum = 0;
	for (u64 i = 0; i < n; i++)
		sum += a32[i] + b32[i];
	u64 h = sum;
	u32 bytes = 0;
	for (u64 i = 0; i < n; i++)
		bytes += a8[i] + b8[i] + c8[i];
	h = mix(h, bytes);
	u32 zeros = 0;
	for (u64 i = 0; i < n; i++)
		zeros += c8[i] == 0xFF;                           /* pcmpeqb */
	h = mix(h, zeros);
	u64 words = 0;
	for (u64 i = 0; i < n; i++)
		words += a16[i];
	return mix(h, words);
}

static u64 block_copies(void)
{
	for (int i = 0; i < 256; i++) {
		records[i].key = next();
		records[i].a = next();
		records[i].b = next();
		for (int k = 0; k < 4; k++)
			records[i].f[k] = (float)(int)(next() % 2000 - 1000) / 8.0f;
		records[i].d[0] = (double)next() / 3.0;
		records[i].d[1] = -(double)next() / 7.0;
	}
	for (int i = 0; i < 256; i++)
		copies[255 - i] = records[i];                     /* struct copies: movdqu/movups */
	u64 h = 0;
	for (int i = 0; i < 256; i++) {
		h = mix(h, copies[i].key + copies[i].a + copies[i].b);
		h = mix(h, bits_of(copies[i].f[0] + copies[i].f[3]));
		h = mix(h, bits_of_d(copies[i].d[0] - copies[i].d[1]));
	}
	return h;
}

static float minf(float x, float y) { return x < y ? x : y; }
static float maxf(float x, float y) { return x > y ? x : y; }

static u64 float_math(u64 n)
{
	for (u64 i = 0; i < n; i++)
		fa[i] = fa[i] * 0.75f + fb[i] * 1.25f;            /* mulps, addps */
	for (u64 i = 0; i < n; i++)
		fb[i] = minf(maxf(fb[i] - fa[i], -500.0f), 500.0f);   /* subps, maxps, minps */
	float dot = 0.0f;
	for (u64 i = 0; i < n; i++)
		dot += fa[i] * fb[i];
	float roots = 0.0f;
	for (u64 i = 0; i < n; i++)
		roots += __builtin_sqrtf(fa[i] < 0 ? -fa[i] : fa[i]);   /* sqrtss/sqrtps, andps */
	double acc = 0.0;
	for (u64 i = 0; i < n; i++) {
		da[i] = da[i] / 3.0 + (double)fa[i];              /* divpd, cvtps2pd */
		acc += da[i] * da[i];
	}
	i64 ints = 0;
	for (u64 i = 0; i < n; i++)
		ints += (i64)(fb[i] * 16.0f) + (int)(da[i] / 1024.0);   /* cvttss2si, cvttsd2si */
	double r = __builtin_sqrt(acc);
	u64 h = mix(bits_of(dot), bits_of(roots));
	h = mix(h, bits_of_d(acc));
	h = mix(h, bits_of_d(r));
	h = mix(h, (u64)ints);
	return h;
}

int guest_main(void)
{
	u64 n = arg_u64("n", 4096);
	u64 rounds = arg_u64("rounds", 4);
	if (n == 0 || n > MAX_N || n % 16 != 0) {
		printf("sse: n=%lu must be a multiple of 16 in 16..%u\n", n, MAX_N);
		return 2;
	}
	for (u64 i = 0; i < n; i++) {
		a8[i] = (u8)next();
		b8[i] = (u8)next();
		a16[i] = (u16)next();
		a32[i] = next();
		b32[i] = next() | (next() << 24);
		fa[i] = (float)(int)(next() % 20001 - 10000) / 16.0f;   /* cvtsi2ss */
		fb[i] = (float)(int)(next() % 4001 - 2000) / 4.0f;
		da[i] = (double)(int)(next() % 100001 - 50000) * 0.5;   /* cvtsi2sd */
	}
	u64 ih = 0, fh = 0;
	for (u64 r = 0; r < rounds; r++) {
		ih = mix(ih, integer_lanes(n));
		fh = mix(fh, float_math(n));
	}
	u64 ch = block_copies();
	printf("sse: integer lanes %016lx\n", ih);
	printf("sse: float math    %016lx\n", fh);
	printf("sse: block copies  %016lx\n", ch);
	printf("sse: OK, n=%lu rounds=%lu\n", n, rounds);
	return 0;
}
