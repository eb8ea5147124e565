/* hello.c: the smallest pvrt program: print a line and return, which
 * powers the domain off. Build it with "make hello". */
#include <pvrt/rts.h>

static const char message[] = "Hello, World!\n";

int hs_main(void)
{
	rts_console_write(message, sizeof message - 1);
	return 0;
}
