/* printf-style formatting without libc, shared by the image (kprintf) and the host tools.
 * Supports %d %i %u %x %X %o %c %s %p %% with '-', '0', '+', ' ', width, precision, h/hh/l/ll/z/j. */
#include "port.h"

struct out {
	char *buf;
	size_t size, len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void pad(struct out *o, char c, int n)
{
	while (n-- > 0)
		put(o, c);
}

/* Digits of v in base, least significant first; returns the count. */
static int digits(char *tmp, unsigned long long v, unsigned base, int upper)
{
	const char *d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	int n = 0;
	do {
		tmp[n++] = d[v % base];
		v /= base;
	} while (v);
	return n;
}

static void put_number(struct out *o, unsigned long long v, int neg, unsigned base, int upper,
		       int width, int prec, int left, int zero, char sign, const char *prefix)
{
	char tmp[24];
	int n = (prec == 0 && v == 0) ? 0 : digits(tmp, v, base, upper);
	int zeros = prec > n ? prec - n : 0;
	int plen = (int)strlen(prefix) + (neg || sign ? 1 : 0);
	int total = plen + zeros + n;

	if (prec >= 0)
		zero = 0;
	if (!left && !zero)
		pad(o, ' ', width - total);
	if (neg)
		put(o, '-');
	else if (sign)
		put(o, sign);
	while (*prefix)
		put(o, *prefix++);
	if (!left && zero)
		pad(o, '0', width - total);
	pad(o, '0', zeros);
	while (n)
		put(o, tmp[--n]);
	if (left)
		pad(o, ' ', width - total);
}

int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		int left = 0, zero = 0, width = 0, prec = -1, lng = 0;
		char sign = 0;
		for (;; fmt++) {
			if (fmt[1] == '-') left = 1;
			else if (fmt[1] == '0') zero = 1;
			else if (fmt[1] == '+') sign = '+';
			else if (fmt[1] == ' ') { if (!sign) sign = ' '; }
			else break;
		}
		fmt++;
		if (*fmt == '*') {
			width = va_arg(ap, int);
			if (width < 0) { left = 1; width = -width; }
			fmt++;
		} else {
			while (*fmt >= '0' && *fmt <= '9')
				width = width * 10 + (*fmt++ - '0');
		}
		if (*fmt == '.') {
			fmt++;
			prec = 0;
			if (*fmt == '*') {
				prec = va_arg(ap, int);
				fmt++;
			} else {
				while (*fmt >= '0' && *fmt <= '9')
					prec = prec * 10 + (*fmt++ - '0');
			}
		}
		/* Length modifiers: 0 int, 1 long, 2 long long, -1 short, -2 char. */
		for (;; fmt++) {
			if (*fmt == 'l') lng = lng < 1 ? 1 : 2;
			else if (*fmt == 'z' || *fmt == 'j') lng = 2;
			else if (*fmt == 'h') lng = lng == -1 ? -2 : -1;
			else break;
		}
		switch (*fmt) {
		case 'd': case 'i': {
			long long v = lng >= 2 ? va_arg(ap, long long) : lng == 1 ? va_arg(ap, long) : va_arg(ap, int);
			if (lng == -1) v = (short)v;
			if (lng == -2) v = (signed char)v;
			unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
			put_number(&o, u, v < 0, 10, 0, width, prec, left, zero, sign, "");
			break;
		}
		case 'u': case 'x': case 'X': case 'o': {
			unsigned long long v = lng >= 2 ? va_arg(ap, unsigned long long)
				: lng == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
			if (lng == -1) v = (unsigned short)v;
			if (lng == -2) v = (unsigned char)v;
			unsigned base = *fmt == 'u' ? 10 : *fmt == 'o' ? 8 : 16;
			put_number(&o, v, 0, base, *fmt == 'X', width, prec, left, zero, 0, "");
			break;
		}
		case 'p': {
			uintptr_t v = (uintptr_t)va_arg(ap, void *);
			put_number(&o, v, 0, 16, 0, width, prec, left, zero, 0, "0x");
			break;
		}
		case 'c':
			if (!left) pad(&o, ' ', width - 1);
			put(&o, (char)va_arg(ap, int));
			if (left) pad(&o, ' ', width - 1);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			int n = 0;
			while (s[n] && (prec < 0 || n < prec))
				n++;
			if (!left) pad(&o, ' ', width - n);
			for (int i = 0; i < n; i++)
				put(&o, s[i]);
			if (left) pad(&o, ' ', width - n);
			break;
		}
		case '%':
			put(&o, '%');
			break;
		case '\0':
			fmt--;  /* a lone '%' at the end: print nothing more */
			break;
		default:  /* unknown conversion: show it rather than guess */
			put(&o, '%');
			put(&o, *fmt);
			break;
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = fmt_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
