/* threaded.c: what the threaded ways (thr, thr_debug) add: a capability
 * count and the test-and-set lock that serialises console writers. */
#include "internal.h"

#ifdef THREADED
unsigned int rts_n_capabilities;

int rts_lock_try(struct rts_lock *l, unsigned long spins)
{
	do {
		if (__atomic_exchange_n(&l->held, 1, __ATOMIC_ACQUIRE) == 0)
			return 1;
		__asm__ __volatile__("pause");
	} while (spins--);
	return 0;
}

void rts_lock_acquire(struct rts_lock *l)
{
	while (!rts_lock_try(l, 1000))
		rts_yield();
#ifdef DEBUG
	ASSERT(l->held == 1);
#endif
}

void rts_lock_release(struct rts_lock *l)
{
#ifdef DEBUG
	if (l->held != 1)
		halvm_panic("releasing a console lock that is not held");
#endif
	__atomic_store_n(&l->held, 0, __ATOMIC_RELEASE);
}
#else
/* ISO C forbids an empty translation unit. */
typedef int rts_threaded_unused;
#endif
