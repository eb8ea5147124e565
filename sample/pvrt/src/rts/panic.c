/* panic.c: halvm_panic and, in the debug ways, assertions and stack checks. */
#include "internal.h"

void halvm_panic(const char *fmt, ...)
{
	static int panicking;
	__builtin_va_list ap;

	/* A panic while panicking (say, a failed assertion on the console
	 * path) stops at once rather than recursing. */
	if (__atomic_exchange_n(&panicking, 1, __ATOMIC_ACQ_REL))
		rts_shutdown_now(SHUTDOWN_crash);
	rts_console_emergency("halvm_panic: ", 13);
	__builtin_va_start(ap, fmt);
	rts_vprintf(fmt, ap);
	__builtin_va_end(ap);
	rts_console_emergency("\n", 1);
	rts_console_drain();
	rts_shutdown_now(SHUTDOWN_crash);
}

#ifdef DEBUG
extern unsigned long stack_bottom[];

#define STACK_CANARY 0x5057525453544b21UL /* "PWRTSTK!" */
#define CANARY_WORDS 8

void rts_assert_failed(const char *expr, const char *file, int line)
{
	halvm_panic("assertion failed: %s at %s:%d (rts way %s)", expr, file, line, rts_way);
}

void rts_debug_stack_init(void)
{
	int i;

	for (i = 0; i < CANARY_WORDS; i++)
		stack_bottom[i] = STACK_CANARY ^ (unsigned long)i;
}

void rts_debug_stack_check(void)
{
	int i;

	for (i = 0; i < CANARY_WORDS; i++)
		if (stack_bottom[i] != (STACK_CANARY ^ (unsigned long)i))
			halvm_panic("stack overflow: canary word %d overwritten", i);
}
#endif
