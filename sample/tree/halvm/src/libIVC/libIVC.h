/* libIVC.h: inter-VM communication channels between dom0 tools and HaLVM
 * guests (sample upstream: a small stand-in with the real library's shape). */
#ifndef LIBIVC_H
#define LIBIVC_H
#include <stdint.h>

struct libIVC_interface;
typedef struct libIVC_interface libIVC_interface_t;

libIVC_interface_t *openIVCLibrary(void);
void closeIVCLibrary(libIVC_interface_t *iface);
int ivc_event_channel_fd(libIVC_interface_t *iface);
#endif
