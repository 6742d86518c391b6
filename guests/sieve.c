/* sieve: count primes below N with a bit sieve over odd numbers (the compute benchmark).
 * cmdline: n=N (default 1000000), rounds=R (default 1; repeats the whole sieve for longer runs).
 * Prints the count and exits 0; exits 2 when N is too large for the static bitmap. */
#include "rt.h"

#define MAX_N (32ul << 20)           /* 32 Mi numbers -> 2 MiB bitmap of odd numbers */
static u64 bits[MAX_N / 2 / 64 + 1]; /* bit i set = 2i+1 is composite */

static u64 sieve(u64 n)
{
	if (n <= 2)
		return 0;
	u64 odds = n / 2;                /* odd numbers 1,3,..., below n: indexes 0..odds-1 */
	u64 words = (odds + 63) / 64;
	for (u64 i = 0; i < words; i++)
		bits[i] = 0;
	for (u64 i = 1; (2 * i + 1) * (2 * i + 1) < n; i++) {
		if (bits[i / 64] & (1ul << (i % 64)))
			continue;
		u64 p = 2 * i + 1;
		for (u64 j = (p * p) / 2; j < odds; j += p)
			bits[j / 64] |= 1ul << (j % 64);
	}
	u64 count = 1;                   /* the prime 2 */
	for (u64 i = 1; i < odds; i++)
		if (!(bits[i / 64] & (1ul << (i % 64))))
			count++;
	return count;
}

int guest_main(void)
{
	u64 n = arg_u64("n", 1000000);
	u64 rounds = arg_u64("rounds", 1);
	if (n > MAX_N) {
		printf("sieve: n=%lu is above the limit %lu\n", n, MAX_N);
		return 2;
	}
	u64 count = 0;
	for (u64 r = 0; r < rounds; r++)
		count = sieve(n);
	printf("sieve: %lu primes below %lu\n", count, n);
	return 0;
}
