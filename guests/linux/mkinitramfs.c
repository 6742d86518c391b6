/* mkinitramfs: writes an initramfs (a cpio archive in the "newc" format the kernel unpacks) to stdout from a
 * list of entries on stdin, one per line:
 *   dir  PATH MODE            a directory
 *   file PATH MODE SOURCE     a regular file with SOURCE's bytes
 *   slink PATH TARGET         a symbolic link
 *   nod  PATH MODE c|b MAJOR MINOR   a device node
 * MODE is octal permission bits; every entry is owned by root. No root privileges are needed to build it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned long ino = 300000;
static unsigned long offset;

static void pad4(void)
{
	while (offset & 3) {
		putchar(0);
		offset++;
	}
}

/* newc's rdevmajor/rdevminor carry a device node's number; devmajor/devminor stay 0. */
static void entry(const char *name, unsigned long mode, unsigned long major, unsigned long minor,
		  const void *data, unsigned long size)
{
	unsigned long namesize = strlen(name) + 1;
	offset += printf("070701%08lX%08lX%08lX%08lX%08lX%08lX%08lX%08lX%08lX%08lX%08lX%08lX%08lX",
			 ino++, mode, 0ul, 0ul, 1ul, 0ul, size, 0ul, 0ul, major, minor, namesize, 0ul);
	fwrite(name, 1, namesize, stdout);
	offset += namesize;
	pad4();
	if (size) {
		fwrite(data, 1, size, stdout);
		offset += size;
	}
	pad4();
}

static void die(const char *what, const char *line)
{
	fprintf(stderr, "mkinitramfs: %s: %s", what, line);
	exit(1);
}

int main(void)
{
	char line[4096], kind[16], path[1024], arg1[1024], arg2[1024], arg3[64], arg4[64];
	while (fgets(line, sizeof line, stdin)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		int n = sscanf(line, "%15s %1023s %1023s %1023s %63s %63s", kind, path, arg1, arg2, arg3, arg4);
		const char *name = path[0] == '/' ? path + 1 : path;
		if (n >= 3 && strcmp(kind, "dir") == 0) {
			entry(name, S_IFDIR | strtoul(arg1, NULL, 8), 0, 0, NULL, 0);
		} else if (n >= 3 && strcmp(kind, "slink") == 0) {
			entry(name, S_IFLNK | 0777, 0, 0, arg1, strlen(arg1));
		} else if (n >= 6 && strcmp(kind, "nod") == 0) {
			unsigned long type = arg2[0] == 'b' ? S_IFBLK : S_IFCHR;
			unsigned long major = strtoul(arg3, NULL, 0), minor = strtoul(arg4, NULL, 0);
			entry(name, type | strtoul(arg1, NULL, 8), major, minor, NULL, 0);
		} else if (n >= 4 && strcmp(kind, "file") == 0) {
			FILE *f = fopen(arg2, "rb");
			if (!f)
				die("cannot open source", line);
			fseek(f, 0, SEEK_END);
			long size = ftell(f);
			fseek(f, 0, SEEK_SET);
			char *data = malloc(size ? size : 1);
			if (!data || fread(data, 1, size, f) != (size_t)size)
				die("cannot read source", line);
			fclose(f);
			entry(name, S_IFREG | strtoul(arg1, NULL, 8), 0, 0, data, size);
			free(data);
		} else {
			die("bad entry", line);
		}
	}
	entry("TRAILER!!!", 0, 0, 0, NULL, 0);
	while (offset & 511) {                    /* a whole number of 512-byte blocks, as cpio writes */
		putchar(0);
		offset++;
	}
	return 0;
}
