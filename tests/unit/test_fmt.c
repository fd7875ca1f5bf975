/* fmt_snprintf against the host's snprintf for the conversions the appliance uses. */
#include <stdint.h>
#include <string.h>
#include "../lib/check.h"
#include "../../lib/port.h"

#define SAME(fmt, ...) do { \
	char a[128], b[128]; \
	int na = fmt_snprintf(a, sizeof(a), fmt, __VA_ARGS__); \
	int nb = snprintf(b, sizeof(b), fmt, __VA_ARGS__); \
	char name[160]; snprintf(name, sizeof(name), "fmt \"%s\" matches libc", fmt); \
	CHECK(name, na == nb && strcmp(a, b) == 0); \
} while (0)

int main(void)
{
	SAME("%d", 0);
	SAME("%d", -2147483647 - 1);
	SAME("%i|%u", 42, 4000000000u);
	SAME("%llu", 18446744073709551615ULL);
	SAME("%lld", -9223372036854775807LL - 1);
	SAME("%llx", 0xdeadbeefcafef00dULL);
	SAME("%08llX", 0x1234ULL);
	SAME("0x%08llX  0x%08llX  %c", 0x1000ULL, 0x123456789ULL, '+');
	SAME("%5d|%-5d|%05d", 42, 42, -42);
	SAME("%x %X %o", 255u, 255u, 8u);
	SAME("%s|%10s|%-10s|%.3s", "abc", "abc", "abc", "abcdef");
	SAME("%zu %zx", (size_t)12345, (size_t)0xabc);
	SAME("%c%c%%", 'o', 'k');
	SAME("%+d % d", 5, 5);
	SAME("%.5d|%8.3d", 42, 7);
	SAME("%hhu %hd", 300, 70000);
	SAME("%*d|%-*d", 6, 1, 6, 2);
	SAME("%p", (void *)0x1000);

	char small[8];
	int n = fmt_snprintf(small, sizeof(small), "%s", "0123456789");
	CHECK("fmt truncates and terminates", n == 10 && strcmp(small, "0123456") == 0);
	n = fmt_snprintf(NULL, 0, "%d", 12345);
	CHECK("fmt with size 0 only counts", n == 5);
	char b[16];
	const char *volatile nullstr = NULL;
	fmt_snprintf(b, sizeof(b), "%s", nullstr);
	CHECK("fmt prints (null) for a NULL string", strcmp(b, "(null)") == 0);
	return CHECK_DONE();
}
