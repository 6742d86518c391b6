/* hello: the smallest guest. Prints one line (plus the cmdline, if any) and exits 0. */
#include "rt.h"

int guest_main(void)
{
	puts("Hello from the guest\n");
	if (*cmdline())
		printf("cmdline: %s\n", cmdline());
	return 0;
}
