/* profile.c: what the profiling way (p) adds: per-function call counts from
 * -finstrument-functions and hypercall/console counters, reported on exit. */
#include "internal.h"

#ifdef PROFILING
unsigned long rts_prof_hypercalls;
static unsigned long prof_calls;
static unsigned long prof_depth, prof_max_depth;

void __cyg_profile_func_enter(void *fn, void *site) __attribute__((no_instrument_function));
void __cyg_profile_func_exit(void *fn, void *site) __attribute__((no_instrument_function));

void __cyg_profile_func_enter(void *fn, void *site)
{
	(void)fn;
	(void)site;
	prof_calls++;
	if (++prof_depth > prof_max_depth)
		prof_max_depth = prof_depth;
}

void __cyg_profile_func_exit(void *fn, void *site)
{
	(void)fn;
	(void)site;
	prof_depth--;
}

void rts_prof_report(void) __attribute__((no_instrument_function));
void rts_prof_report(void)
{
	rts_printf("pvrt profile: calls=%lu max_depth=%lu hypercalls=%lu console_bytes=%lu\n",
		prof_calls, prof_max_depth, rts_prof_hypercalls, rts_prof_console_bytes);
}
#else
typedef int rts_profile_unused;
#endif
