/* printf.c: a small formatter for console messages:
 * %s %c %d %i %u %x %p %% with an optional l (long) modifier. */
#include "internal.h"

struct out {
	char buf[128];
	unsigned long n;
	int emergency;
};

static void flush(struct out *o)
{
	if (o->n == 0)
		return;
	if (o->emergency)
		rts_console_emergency(o->buf, o->n);
	else
		rts_console_write(o->buf, o->n);
	o->n = 0;
}

static void putc_out(struct out *o, char c)
{
	if (o->n == sizeof o->buf)
		flush(o);
	o->buf[o->n++] = c;
}

static void put_unsigned(struct out *o, unsigned long v, unsigned int base)
{
	char digits[24];
	int i = 0;

	do {
		digits[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0);
	while (i > 0)
		putc_out(o, digits[--i]);
}

static void format(struct out *o, const char *fmt, __builtin_va_list ap)
{
	const char *p;

	for (p = fmt; *p; p++) {
		int is_long = 0;
		if (*p != '%') {
			putc_out(o, *p);
			continue;
		}
		p++;
		if (*p == 'l') {
			is_long = 1;
			p++;
		}
		switch (*p) {
		case 's': {
			const char *s = __builtin_va_arg(ap, const char *);
			if (s == 0)
				s = "(null)";
			while (*s)
				putc_out(o, *s++);
			break;
		}
		case 'c':
			putc_out(o, (char)__builtin_va_arg(ap, int));
			break;
		case 'd':
		case 'i': {
			long v = is_long ? __builtin_va_arg(ap, long) : __builtin_va_arg(ap, int);
			if (v < 0) {
				putc_out(o, '-');
				put_unsigned(o, -(unsigned long)v, 10);
			} else {
				put_unsigned(o, (unsigned long)v, 10);
			}
			break;
		}
		case 'u':
			put_unsigned(o, is_long ? __builtin_va_arg(ap, unsigned long) : __builtin_va_arg(ap, unsigned int), 10);
			break;
		case 'x':
			put_unsigned(o, is_long ? __builtin_va_arg(ap, unsigned long) : __builtin_va_arg(ap, unsigned int), 16);
			break;
		case 'p':
			putc_out(o, '0');
			putc_out(o, 'x');
			put_unsigned(o, (unsigned long)__builtin_va_arg(ap, void *), 16);
			break;
		case '%':
			putc_out(o, '%');
			break;
		case '\0':
			p--;
			break;
		default:
			putc_out(o, '%');
			putc_out(o, *p);
		}
	}
	flush(o);
}

void rts_printf(const char *fmt, ...)
{
	struct out o = { .n = 0, .emergency = 0 };
	__builtin_va_list ap;

	__builtin_va_start(ap, fmt);
	format(&o, fmt, ap);
	__builtin_va_end(ap);
}

/* The panic path's formatter: writes through rts_console_emergency. */
void rts_vprintf(const char *fmt, __builtin_va_list ap)
{
	struct out o = { .n = 0, .emergency = 1 };

	format(&o, fmt, ap);
}
