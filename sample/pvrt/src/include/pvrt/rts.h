/* rts.h: the interface between a compiled program and the pvrt runtime.
 *
 * A program provides int hs_main(void). The runtime calls it once the
 * console is up; when it returns 0 the runtime drains the console and powers
 * the domain off; any other value is reported and the domain crashes. */
#ifndef PVRT_RTS_H
#define PVRT_RTS_H

#include <pvrt/xen.h>

/* Provided by the program. */
int hs_main(void);

/* Write n bytes to the PV console ("\n" is sent as "\r\n"). */
void rts_console_write(const char *s, unsigned long n);
/* Write a NUL-terminated string to the PV console. */
void rts_console_puts(const char *s);
/* printf-style output to the console: %s %c %d %u %x %lx %ld %lu %p %%. */
void rts_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "halvm_panic: <message>" and crash the domain (SHUTDOWN_crash). */
void halvm_panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Drain the console and shut the domain down with a SHUTDOWN_* reason. */
void rts_shutdown(unsigned int reason) __attribute__((noreturn));

/* Give the CPU back to Xen once (SCHEDOP_yield). */
void rts_yield(void);

/* The start_info page Xen handed to the guest. */
extern struct start_info *rts_start_info;
/* The RTS way this archive was built for: "v", "p", "thr", "debug", "thr_debug". */
extern const char rts_way[];

/* Freestanding C library pieces the compiler may call. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#ifdef DEBUG
void rts_assert_failed(const char *expr, const char *file, int line) __attribute__((noreturn));
#define ASSERT(e) ((e) ? (void)0 : rts_assert_failed(#e, __FILE__, __LINE__))
#else
#define ASSERT(e) ((void)0)
#endif

#endif
