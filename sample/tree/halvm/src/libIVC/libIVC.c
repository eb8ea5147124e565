/* libIVC.c: open and close the Xen event-channel and grant-table handles a
 * dom0 tool needs to talk to HaLVM guests (stand-in of the real libIVC,
 * built against the compat xenctrl API as upstream's is). */
#define XC_WANT_COMPAT_EVTCHN_API 1
#define XC_WANT_COMPAT_GNTTAB_API 1
#include <stdlib.h>
#include <xenctrl.h>
#include "libIVC.h"

struct libIVC_interface {
	xc_evtchn *ec;
	xc_gnttab *gt;
};

libIVC_interface_t *openIVCLibrary(void)
{
	libIVC_interface_t *iface = calloc(1, sizeof(*iface));
	if (!iface)
		return NULL;
	iface->ec = xc_evtchn_open(NULL, 0);
	iface->gt = xc_gnttab_open(NULL, 0);
	if (!iface->ec || !iface->gt) {
		closeIVCLibrary(iface);
		return NULL;
	}
	return iface;
}

void closeIVCLibrary(libIVC_interface_t *iface)
{
	if (!iface)
		return;
	if (iface->ec)
		xc_evtchn_close(iface->ec);
	if (iface->gt)
		xc_gnttab_close(iface->gt);
	free(iface);
}

int ivc_event_channel_fd(libIVC_interface_t *iface)
{
	return iface && iface->ec ? xc_evtchn_fd(iface->ec) : -1;
}
