/* console.c: output through the PV console ring that xenconsoled reads.
 *
 * Xen gives the ring's machine frame in start_info->console.domU.mfn; the
 * guest finds the matching pseudo-physical frame in start_info->mfn_list and
 * reaches the page through the bootstrap mapping. Bytes go into out[] at
 * out_prod, the new out_prod is published after a barrier, and the console
 * event channel is notified. */
#include "internal.h"
#include "hypercall.h"

static volatile struct xencons_interface *ring;
static uint32_t console_evtchn;

#ifdef THREADED
static struct rts_lock console_lock;
#endif

#ifdef PROFILING
unsigned long rts_prof_console_bytes;
#endif

#define MASK_OUT(i) ((i) & (XENCONS_OUT_SIZE - 1))

int rts_console_init(struct start_info *si)
{
	unsigned long *p2m = (unsigned long *)si->mfn_list;
	unsigned long pfn;

	for (pfn = 0; pfn < si->nr_pages; pfn++) {
		if (p2m[pfn] == si->console.domU.mfn) {
			ring = (volatile struct xencons_interface *)(VIRT_BASE + (pfn << PAGE_SHIFT));
			console_evtchn = si->console.domU.evtchn;
			return 0;
		}
	}
	return -1;
}

static void notify(void)
{
	struct evtchn_send send = { .port = console_evtchn };
	HYPERVISOR_event_channel_op(EVTCHNOP_send, &send);
}

/* Put one byte, waiting for xenconsoled while the ring is full. */
static void put_byte(char c)
{
	XENCONS_RING_IDX prod;

	for (;;) {
		XENCONS_RING_IDX cons = ring->out_cons;
		prod = ring->out_prod;
		barrier();
		ASSERT(prod - cons <= XENCONS_OUT_SIZE);
		if (prod - cons < XENCONS_OUT_SIZE)
			break;
		notify();
		rts_yield();
	}
	ring->out[MASK_OUT(prod)] = c;
	barrier(); /* the byte before the index: x86 keeps stores in order */
	ring->out_prod = prod + 1;
}

static void write_locked(const char *s, unsigned long n)
{
	unsigned long i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\n')
			put_byte('\r');
		put_byte(s[i]);
	}
#ifdef PROFILING
	rts_prof_console_bytes += n;
#endif
	notify();
}

void rts_console_write(const char *s, unsigned long n)
{
	if (ring == 0 || n == 0)
		return;
#ifdef DEBUG
	ASSERT(s != 0);
	rts_debug_stack_check();
#endif
#ifdef THREADED
	rts_lock_acquire(&console_lock);
	write_locked(s, n);
	rts_lock_release(&console_lock);
#else
	write_locked(s, n);
#endif
}

/* Used on the panic path: never blocks forever on the console lock. */
void rts_console_emergency(const char *s, unsigned long n)
{
	if (ring == 0)
		return;
#ifdef THREADED
	if (rts_lock_try(&console_lock, 1000000)) {
		write_locked(s, n);
		rts_lock_release(&console_lock);
		return;
	}
#endif
	write_locked(s, n);
}

void rts_console_puts(const char *s)
{
	rts_console_write(s, strlen(s));
}

/* Wait (bounded) until xenconsoled has consumed everything written. */
void rts_console_drain(void)
{
	unsigned long tries;

	if (ring == 0)
		return;
	for (tries = 0; tries < 100000; tries++) {
		XENCONS_RING_IDX cons = ring->out_cons, prod = ring->out_prod;
		barrier();
		if (cons == prod)
			return;
		notify();
		rts_yield();
	}
}
