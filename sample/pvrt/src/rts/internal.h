/* internal.h: declarations shared by the runtime's own files. */
#ifndef PVRT_INTERNAL_H
#define PVRT_INTERNAL_H

#include <pvrt/rts.h>

#ifndef RTS_WAY
#error "compile the runtime with -DRTS_WAY=\"v\" (or p, thr, debug, thr_debug)"
#endif

/* The image is linked at VIRT_BASE 0: pseudo-physical frame n is mapped at
 * VIRT_BASE + n * PAGE_SIZE in the bootstrap region. */
#define VIRT_BASE 0UL

#define barrier() __asm__ __volatile__("" ::: "memory")

int rts_console_init(struct start_info *si);
void rts_console_drain(void);
void rts_console_emergency(const char *s, unsigned long n);
void rts_vprintf(const char *fmt, __builtin_va_list ap);
void rts_shutdown_now(unsigned int reason) __attribute__((noreturn));

#ifdef THREADED
/* A test-and-set lock guarding the console ring between capabilities. */
struct rts_lock {
	volatile int held;
};
void rts_lock_acquire(struct rts_lock *l);
int rts_lock_try(struct rts_lock *l, unsigned long spins);
void rts_lock_release(struct rts_lock *l);
extern unsigned int rts_n_capabilities;
#endif

#ifdef PROFILING
extern unsigned long rts_prof_hypercalls;
extern unsigned long rts_prof_console_bytes;
void rts_prof_report(void);
#endif

#ifdef DEBUG
void rts_debug_stack_init(void);
void rts_debug_stack_check(void);
#endif

#endif
