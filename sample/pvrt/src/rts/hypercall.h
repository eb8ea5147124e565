/* hypercall.h: calling Xen through the hypercall page (64-bit PV ABI:
 * arguments in rdi, rsi, rdx, r10, r8; result in rax; rcx and r11 are
 * clobbered by the syscall-based stubs). */
#ifndef PVRT_HYPERCALL_H
#define PVRT_HYPERCALL_H

#include <pvrt/xen.h>

extern char hypercall_page[PAGE_SIZE];

#ifdef PROFILING
extern unsigned long rts_prof_hypercalls;
#define PROF_HYPERCALL() (rts_prof_hypercalls++)
#else
#define PROF_HYPERCALL() ((void)0)
#endif

static inline long hypercall2(unsigned int nr, unsigned long a1, unsigned long a2)
{
	register unsigned long rdi __asm__("rdi") = a1;
	register unsigned long rsi __asm__("rsi") = a2;
	long ret;
	PROF_HYPERCALL();
	__asm__ __volatile__("call *%[stub]"
		: "=a"(ret), "+r"(rdi), "+r"(rsi)
		: [stub] "r"(hypercall_page + nr * 32)
		: "rcx", "r11", "rdx", "r10", "r8", "memory");
	return ret;
}

static inline long HYPERVISOR_sched_op(int cmd, void *arg)
{
	return hypercall2(__HYPERVISOR_sched_op, (unsigned long)cmd, (unsigned long)arg);
}

static inline long HYPERVISOR_event_channel_op(int cmd, void *arg)
{
	return hypercall2(__HYPERVISOR_event_channel_op, (unsigned long)cmd, (unsigned long)arg);
}

#endif
