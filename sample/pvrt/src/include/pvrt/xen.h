/* xen.h: the parts of the Xen public ABI (xen-3.0, x86_64 PV) that pvrt
 * uses, written out from the interface definitions: the start_info page,
 * the PV console ring, and the hypercall numbers and argument structures. */
#ifndef PVRT_XEN_H
#define PVRT_XEN_H

typedef unsigned char uint8_t;
typedef unsigned int uint32_t;
typedef unsigned long uint64_t;
typedef signed char int8_t;
typedef unsigned long size_t;

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)

/* Hypercall numbers (stub n lives at hypercall_page + n * 32). */
#define __HYPERVISOR_console_io       18
#define __HYPERVISOR_sched_op         29
#define __HYPERVISOR_event_channel_op 32

/* sched_op commands and shutdown reasons. */
#define SCHEDOP_yield    0
#define SCHEDOP_shutdown 2
#define SHUTDOWN_poweroff 0
#define SHUTDOWN_reboot   1
#define SHUTDOWN_crash    3

struct sched_shutdown {
	uint32_t reason;
};

/* event_channel_op commands. */
#define EVTCHNOP_send 4

struct evtchn_send {
	uint32_t port;
};

/* The start_info page, as the domain builder fills it for a PV guest. */
struct start_info {
	char magic[32];             /* "xen-<version>-<platform>" */
	unsigned long nr_pages;     /* total pages allocated to this domain */
	unsigned long shared_info;  /* machine address of the shared info page */
	uint32_t flags;
	unsigned long store_mfn;    /* xenstore ring */
	uint32_t store_evtchn;
	union {
		struct {
			unsigned long mfn;  /* console ring */
			uint32_t evtchn;
		} domU;
		struct {
			uint32_t info_off;
			uint32_t info_size;
		} dom0;
	} console;
	unsigned long pt_base;      /* virtual address of the page directory */
	unsigned long nr_pt_frames;
	unsigned long mfn_list;     /* virtual address of the pfn -> mfn list */
	unsigned long mod_start;
	unsigned long mod_len;
	int8_t cmd_line[1024];
	unsigned long first_p2m_pfn;
	unsigned long nr_p2m_frames;
};

/* The PV console ring shared with xenconsoled. */
typedef uint32_t XENCONS_RING_IDX;
#define XENCONS_IN_SIZE  1024
#define XENCONS_OUT_SIZE 2048

struct xencons_interface {
	char in[XENCONS_IN_SIZE];
	char out[XENCONS_OUT_SIZE];
	XENCONS_RING_IDX in_cons, in_prod;
	XENCONS_RING_IDX out_cons, out_prod;
};

#endif
