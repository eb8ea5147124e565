/* main.c: the runtime's life cycle: start, run hs_main, shut down. */
#include "internal.h"
#include "hypercall.h"

struct start_info *rts_start_info;
const char rts_way[] = RTS_WAY;

void rts_start(struct start_info *si);

void rts_yield(void)
{
	HYPERVISOR_sched_op(SCHEDOP_yield, 0);
}

void rts_shutdown_now(unsigned int reason)
{
	struct sched_shutdown sd = { .reason = reason };

	for (;;)
		HYPERVISOR_sched_op(SCHEDOP_shutdown, &sd);
}

void rts_shutdown(unsigned int reason)
{
#ifdef DEBUG
	rts_debug_stack_check();
#endif
	rts_console_drain();
	rts_shutdown_now(reason);
}

void rts_start(struct start_info *si)
{
	int rc;

	rts_start_info = si;
#ifdef DEBUG
	rts_debug_stack_init();
#endif
	if (rts_console_init(si) != 0)
		rts_shutdown_now(SHUTDOWN_crash); /* nowhere to say why */
	ASSERT(memcmp(si->magic, "xen-3.0-x86_64", 14) == 0);
	ASSERT(si->nr_pages > 0);
#ifdef THREADED
	rts_n_capabilities = 1;
#endif
	rc = hs_main();
#ifdef PROFILING
	rts_prof_report();
#endif
	if (rc != 0) {
		rts_printf("pvrt: hs_main returned %d\n", rc);
		rts_shutdown(SHUTDOWN_crash);
	}
	rts_shutdown(SHUTDOWN_poweroff);
}
