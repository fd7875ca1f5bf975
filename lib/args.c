/* Pure parsing helpers for commands (built into the image and into host tests). */
#include "args.h"
#include "errors.h"
#include "port.h"

int args_split(char *line, char **argv, int max)
{
	int argc = 0;
	char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (!*p)
			return argc;
		if (argc == max)
			return -E_RANGE;
		char *out = p;
		argv[argc++] = out;
		int quoted = 0;
		while (*p && (quoted || (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n'))) {
			if (*p == '"') {
				quoted = !quoted;
				p++;
				continue;
			}
			*out++ = *p++;
		}
		if (quoted)
			return -E_SYNTAX;
		int end = *p != '\0';
		*out = '\0';
		if (end)
			p++;
		if (!end)
			return argc;
	}
}

static int parse_num(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	/* Decimal or 0x hex: a leading zero is a zero (people type 010 meaning ten), never octal. */
	unsigned base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	uint64_t v = 0;
	const char *start = s;
	for (;; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			break;
		if (d >= base || v > (UINT64_MAX - d) / base)
			return -E_INVAL;
		v = v * base + d;
	}
	if (s == start)
		return -E_INVAL;
	*out = v;
	*sp = s;
	return 0;
}

int args_u64(const char *s, uint64_t *out)
{
	if (!s || parse_num(&s, out) < 0 || *s)
		return -E_INVAL;
	return 0;
}

int args_size_in(const char *s, uint32_t sector, uint64_t *out)
{
	uint64_t v;
	if (!s || parse_num(&s, &v) < 0)
		return -E_INVAL;
	static const struct { const char *sfx; uint64_t mul; } units[] = {
		{ "", 1 }, { "k", 1ULL << 10 }, { "K", 1ULL << 10 }, { "KiB", 1ULL << 10 },
		{ "M", 1ULL << 20 }, { "MiB", 1ULL << 20 }, { "G", 1ULL << 30 }, { "GiB", 1ULL << 30 },
		{ "T", 1ULL << 40 }, { "TiB", 1ULL << 40 }, { "kB", 1000 }, { "KB", 1000 },
		{ "MB", 1000000 }, { "GB", 1000000000 }, { "TB", 1000000000000ULL }, { "s", 0 },
	};
	for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t mul = units[i].mul ? units[i].mul : sector;
		if (strcmp(s, units[i].sfx) || !mul)
			continue;
		if (v > UINT64_MAX / mul)
			return -E_INVAL;
		*out = v * mul;
		return 0;
	}
	return -E_INVAL;
}

int args_size(const char *s, uint64_t *out)
{
	return args_size_in(s, 0, out);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int args_hex(const char *s, uint8_t *out, uint32_t max, uint32_t *len)
{
	if (!s)
		return -E_INVAL;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	size_t n = strlen(s);
	if (n == 0 || n % 2 || n / 2 > max)
		return -E_INVAL;
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -E_INVAL;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	*len = (uint32_t)(n / 2);
	return 0;
}

bool args_kv(const char *arg, const char *key, const char **val)
{
	size_t n = strlen(key);
	if (strncmp(arg, key, n) || arg[n] != '=')
		return false;
	*val = arg + n + 1;
	return true;
}
