/* mkrenddir: create a world-writable rendezvous directory in XenStore, so
 * HaLVM guests can find each other (sample upstream stand-in of the tool). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

int main(int argc, char **argv)
{
	struct xs_handle *xs;
	struct xs_permissions perm = { .id = 0, .perms = XS_PERM_READ | XS_PERM_WRITE };

	if (argc != 2) {
		fprintf(stderr, "usage: %s <xenstore path>\n", argv[0]);
		return 2;
	}
	xs = xs_open(0);
	if (!xs) {
		perror("mkrenddir: xs_open");
		return 1;
	}
	if (!xs_mkdir(xs, XBT_NULL, argv[1]) || !xs_set_permissions(xs, XBT_NULL, argv[1], &perm, 1)) {
		perror("mkrenddir");
		xs_close(xs);
		return 1;
	}
	xs_close(xs);
	return 0;
}
