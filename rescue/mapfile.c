/* ddrescue mapfile text, both ways. Pure: output through a callback, input from a buffer. */
#include "mapfile.h"
#include "../lib/errors.h"

static bool block_status_ok(char c)
{
	return c == '?' || c == '*' || c == '/' || c == '-' || c == '+';
}

static int emitf(mapfile_emit_fn emit, void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int emitf(mapfile_emit_fn emit, void *ctx, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = fmt_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -E_RANGE;
	return emit(ctx, line, (size_t)n);
}

static int emit_block(mapfile_emit_fn emit, void *ctx, const struct mapfile_block *b)
{
	return emitf(emit, ctx, "0x%08llX  0x%08llX  %c\n", (unsigned long long)b->pos,
		     (unsigned long long)b->size, b->status);
}

int mapfile_write(const struct mapfile_header *h, mapfile_next_fn next, void *next_ctx,
		  mapfile_emit_fn emit, void *emit_ctx)
{
	if (!block_status_ok(h->current_status))
		return -E_INVAL;   /* also keeps ddrescue 1.30's '%' out of our files */
	int rc = emitf(emit, emit_ctx,
		       "# Mapfile. Created by %s\n# Command line: %s\n# Start time:   %s\n"
		       "# Current time: %s\n# %s\n# current_pos  current_status  current_pass\n"
		       "0x%08llX     %c               %u\n#      pos        size  status\n",
		       h->version, h->command_line, h->start_time, h->current_time, h->phase,
		       (unsigned long long)h->current_pos, h->current_status, h->current_pass);
	struct mapfile_block cur = { 0, 0, 0 }, b;
	uint64_t end = 0;
	int more;
	while (rc == 0 && (more = next(next_ctx, &b)) != 0) {
		if (more < 0)
			return more;
		if (!b.size || !block_status_ok(b.status) || b.pos != end || b.pos + b.size < b.pos)
			return -E_INVAL;
		end = b.pos + b.size;
		if (cur.size && cur.status == b.status) {
			cur.size += b.size;
			continue;
		}
		if (cur.size)
			rc = emit_block(emit, emit_ctx, &cur);
		cur = b;
	}
	if (rc < 0)
		return rc;
	return cur.size ? emit_block(emit, emit_ctx, &cur) : 0;
}

/* ---- reading ---- */

struct cursor {
	const char *p, *end;
	unsigned line;
	char *err;
	size_t errlen;
};

static int fail(struct cursor *c, const char *why)
{
	if (c->errlen)
		fmt_snprintf(c->err, c->errlen, "line %u: %s", c->line, why);
	return -E_SYNTAX;
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* A C-style unsigned number (0x hex, leading-0 octal, decimal), as ddrescue reads them. */
static int parse_number(const char **pp, const char *end, uint64_t *out)
{
	const char *p = *pp;
	unsigned base = 10;
	if (p < end && *p == '0') {
		base = 8;
		if (p + 1 < end && (p[1] == 'x' || p[1] == 'X')) {
			base = 16;
			p += 2;
			if (p == end || !((*p >= '0' && *p <= '9') || ((*p | 32) >= 'a' && (*p | 32) <= 'f')))
				return -E_SYNTAX;
		}
	}
	uint64_t v = 0;
	const char *start = p;
	for (; p < end; p++) {
		unsigned d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && (*p | 32) >= 'a' && (*p | 32) <= 'f')
			d = (unsigned)((*p | 32) - 'a' + 10);
		else
			break;
		if (d >= base)
			return -E_SYNTAX;
		if (v > (UINT64_MAX - d) / base)
			return -E_RANGE;
		v = v * base + d;
	}
	if (p == start)
		return -E_SYNTAX;
	*out = v;
	*pp = p;
	return 0;
}

/* Splits the current line into at most 4 fields; returns the count (5 = too many). */
static int split_fields(const char *p, const char *eol, const char *f[4], const char *fe[4])
{
	int n = 0;
	while (p < eol) {
		while (p < eol && is_space(*p))
			p++;
		if (p == eol || *p == '#')
			break;
		if (n == 4)
			return 5;
		f[n] = p;
		while (p < eol && !is_space(*p) && *p != '#')
			p++;
		fe[n++] = p;
	}
	return n;
}

static int field_number(struct cursor *c, const char *f, const char *fe, uint64_t *v, const char *what)
{
	const char *p = f;
	int rc = parse_number(&p, fe, v);
	char why[64];
	if (rc == -E_RANGE) {
		fmt_snprintf(why, sizeof(why), "%s is too large", what);
		return fail(c, why);
	}
	if (rc < 0 || p != fe) {
		fmt_snprintf(why, sizeof(why), "%s is not a number", what);
		return fail(c, why);
	}
	return 0;
}

int mapfile_read(const char *text, size_t len, enum mapfile_kind kind, struct mapfile_status *st,
		 mapfile_block_fn fn, void *ctx, char *err, size_t errlen)
{
	struct cursor c = { text, text + len, 0, err, errlen };
	struct mapfile_status local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	bool first = true;
	uint64_t expect = 0;
	bool have_block = false;
	if (errlen)
		err[0] = '\0';
	while (c.p < c.end) {
		c.line++;
		const char *eol = c.p;
		while (eol < c.end && *eol != '\n')
			eol++;
		const char *f[4], *fe[4];
		int n = split_fields(c.p, eol, f, fe);
		const char *next_line = eol < c.end ? eol + 1 : eol;
		if (n == 0) {
			c.p = next_line;
			continue;
		}
		if (n == 5)
			return fail(&c, "too many fields");
		/* The first data line is the status line when its second field is a status char. */
		if (first && n >= 2 && n <= 3 && fe[1] - f[1] == 1 &&
		    !(f[1][0] >= '0' && f[1][0] <= '9')) {
			char s = f[1][0];
			if (!(block_status_ok(s) || s == 'F' || s == 'G' || s == '%'))
				return fail(&c, "unknown current status");
			int rc = field_number(&c, f[0], fe[0], &st->current_pos, "current position");
			if (rc < 0)
				return rc;
			uint64_t pass = 1;
			if (n == 3 && (rc = field_number(&c, f[2], fe[2], &pass, "current pass")) < 0)
				return rc;
			if (pass > 0xffffffffu)
				return fail(&c, "current pass is too large");
			st->present = true;
			st->current_status = s;
			st->current_pass = (unsigned)pass;
			first = false;
			c.p = next_line;
			continue;
		}
		first = false;
		if (n != 3)
			return fail(&c, "a block needs position, size and status");
		struct mapfile_block b;
		int rc = field_number(&c, f[0], fe[0], &b.pos, "position");
		if (rc == 0)
			rc = field_number(&c, f[1], fe[1], &b.size, "size");
		if (rc < 0)
			return rc;
		if (fe[2] - f[2] != 1 || !block_status_ok(f[2][0]))
			return fail(&c, "unknown block status");
		b.status = f[2][0];
		if (b.size == 0 && kind == MAPFILE_MAP)
			return fail(&c, "empty block");
		if (b.pos + b.size < b.pos)
			return fail(&c, "block runs past the largest position");
		if (kind == MAPFILE_MAP && have_block && b.pos != expect) {
			char why[96];
			fmt_snprintf(why, sizeof(why), "block at 0x%llX does not follow the previous one (ends at 0x%llX)",
				     (unsigned long long)b.pos, (unsigned long long)expect);
			return fail(&c, why);
		}
		have_block = true;
		expect = b.pos + b.size;
		if (fn && (rc = fn(ctx, &b)) < 0)
			return rc;
		c.p = next_line;
	}
	return 0;
}
