/* minlibc.h: the freestanding C library pieces the HaLVM links into base. */
#ifndef MINLIBC_H
#define MINLIBC_H
#include <stddef.h>
size_t strnlen(const char *s, size_t max);
int abs(int x);
long labs(long x);
#endif
