/* The ddrescue mapfile writer and reader, and their agreement with GNU ddrescue 1.27 itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../../lib/errors.h"
#include "../../rescue/mapfile.h"

struct blocks { struct mapfile_block b[64]; int n, i; };

static int next_block(void *ctx, struct mapfile_block *b)
{
	struct blocks *bl = ctx;
	if (bl->i == bl->n)
		return 0;
	*b = bl->b[bl->i++];
	return 1;
}

static int collect(void *ctx, const struct mapfile_block *b)
{
	struct blocks *bl = ctx;
	if (bl->n == 64)
		return -E_NOSPC;
	bl->b[bl->n++] = *b;
	return 0;
}

struct text { char buf[8192]; size_t len; };

static int to_text(void *ctx, const char *s, size_t n)
{
	struct text *t = ctx;
	if (t->len + n >= sizeof(t->buf))
		return -E_NOSPC;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
	return 0;
}

static const struct mapfile_header hdr = {
	"cowboot test", "rescue ov0", "2026-11-22 10:00:00", "2026-11-22 10:05:00", "Finished",
	0x170000, '+', 1,
};

static int read_str(const char *s, enum mapfile_kind k, struct mapfile_status *st, struct blocks *out,
		    char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	return mapfile_read(s, strlen(s), k, st, collect, out, err, errlen);
}

static int run(const char *cmd)
{
	int rc = system(cmd);
	return rc;
}

int main(void)
{
	struct blocks in = { { { 0, 0x80000, '?' }, { 0x80000, 0x80000, '+' }, { 0x100000, 0x80000, '+' },
			       { 0x180000, 0x180000, '?' } }, 4, 0 };
	struct text t = { .len = 0 };
	int rc = mapfile_write(&hdr, next_block, &in, to_text, &t);
	const char *want =
		"# Mapfile. Created by cowboot test\n"
		"# Command line: rescue ov0\n"
		"# Start time:   2026-11-22 10:00:00\n"
		"# Current time: 2026-11-22 10:05:00\n"
		"# Finished\n"
		"# current_pos  current_status  current_pass\n"
		"0x00170000     +               1\n"
		"#      pos        size  status\n"
		"0x00000000  0x00080000  ?\n"
		"0x00080000  0x00100000  +\n"
		"0x00180000  0x00180000  ?\n";
	CHECK("writer output is ddrescue's layout, neighbours merged", rc == 0 && !strcmp(t.buf, want));

	struct blocks gap = { { { 0, 0x200, '+' }, { 0x400, 0x200, '-' } }, 2, 0 };
	t.len = 0;
	CHECK("writer refuses a gap", mapfile_write(&hdr, next_block, &gap, to_text, &t) == -E_INVAL);
	struct mapfile_header pct = hdr;
	pct.current_status = '%';
	struct blocks one = { { { 0, 0x200, '+' } }, 1, 0 };
	CHECK("writer never emits '%'", mapfile_write(&pct, next_block, &one, to_text, &t) == -E_INVAL);
	struct blocks big = { { { 0, 0x123456789ABULL, '/' } }, 1, 0 };
	t.len = 0;
	mapfile_write(&hdr, next_block, &big, to_text, &t);
	CHECK("large positions print in upper-case hex", strstr(t.buf, "0x00000000  0x123456789AB  /\n") != NULL);

	/* Reading what we wrote gives the merged blocks back. */
	struct blocks out;
	struct mapfile_status st;
	char err[128];
	t.len = 0;
	in.i = 0;
	mapfile_write(&hdr, next_block, &in, to_text, &t);
	rc = read_str(t.buf, MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("reader reads the writer's output", rc == 0 && out.n == 3 && out.b[1].pos == 0x80000 &&
	      out.b[1].size == 0x100000 && out.b[1].status == '+');
	CHECK("reader returns the status line", st.present && st.current_pos == 0x170000 &&
	      st.current_status == '+' && st.current_pass == 1);

	rc = read_str("# c\n\n  0x10 ? \n0 0x200 +  # trailing comment\n01000 512 -\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("comments, blank lines, octal and decimal numbers", rc == 0 && st.current_pos == 0x10 &&
	      out.n == 2 && out.b[1].pos == 512 && out.b[1].size == 512 && out.b[1].status == '-');
	rc = read_str("0x10 ?\n0 0x200 +\n0x200 01000 -\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("octal sizes are read as C reads them", rc == 0 && out.n == 2 && out.b[1].size == 512);
	rc = read_str("0 0x200 +\n0x200 0x200 -\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("a missing status line is allowed", rc == 0 && !st.present && out.n == 2);
	rc = read_str("0 +\n0 0x200 +\n0x400 0x200 -\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("a gap is refused with its line", rc == -E_SYNTAX && !strcmp(err, "line 3: block at 0x400 does not follow the previous one (ends at 0x200)"));
	rc = read_str("0 +\n0 0x200 +\n0x100 0x200 -\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("an overlap is refused", rc == -E_SYNTAX && strstr(err, "line 3"));
	rc = read_str("0 +\n0x400 0x200 +\n0 0x200 -\n", MAPFILE_DOMAIN, &st, &out, err, sizeof(err));
	CHECK("a domain file may be in any order", rc == 0 && out.n == 2 && out.b[1].pos == 0);
	rc = read_str("0 +\n0 0x200 x\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("an unknown block status is refused", rc == -E_SYNTAX && !strcmp(err, "line 2: unknown block status"));
	rc = read_str("0 Q\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("an unknown current status is refused", rc == -E_SYNTAX && strstr(err, "current status"));
	rc = read_str("0 +\n0 0x2zz +\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("a malformed number is refused", rc == -E_SYNTAX && strstr(err, "size is not a number"));
	rc = read_str("0 +\n0 0x200\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("a truncated block line is refused", rc == -E_SYNTAX && strstr(err, "line 2"));
	rc = read_str("0 +\n0 0x10000000000000000 +\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("a number over 64 bits is refused", rc == -E_SYNTAX && strstr(err, "too large"));
	rc = read_str("0 +\n0xFFFFFFFFFFFFFF00 0x200 +\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("a block past 2^64 is refused", rc == -E_SYNTAX && strstr(err, "past"));
	rc = read_str("0 +\n0 0 +\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("an empty block is refused in a mapfile", rc == -E_SYNTAX && strstr(err, "empty"));
	rc = read_str("0 +\n0 0x200 + extra\n", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("extra fields are refused", rc == -E_SYNTAX);
	rc = read_str("0x100 % 3\n0 0x200 +", MAPFILE_MAP, &st, &out, err, sizeof(err));
	CHECK("ddrescue 1.30's '%' status and a last line without newline are read",
	      rc == 0 && st.current_status == '%' && st.current_pass == 3 && out.n == 1);

	/* Interop with GNU ddrescue: a real partial run's mapfile reads, and our mapfile of it is
	 * accepted by ddrescuelog with the same totals. */
	char dir[] = "/tmp/cowboot-mapfile-XXXXXX";
	if (!mkdtemp(dir)) {
		CHECK("temporary directory", 0);
		return CHECK_DONE();
	}
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cd %s && head -c 3145728 /dev/urandom > src && "
		 "ddrescue -f -s 1Mi -i 512Ki src out map >/dev/null 2>&1 && "
		 "ddrescue -f -s 64Ki -i 2Mi src out map >/dev/null 2>&1", dir);
	int have = run(cmd) == 0;
	CHECK("GNU ddrescue made a partial mapfile", have);
	if (have) {
		char path[512];
		snprintf(path, sizeof(path), "%s/map", dir);
		FILE *f = fopen(path, "r");
		static char text[65536];
		size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
		if (f)
			fclose(f);
		text[n] = '\0';
		memset(&out, 0, sizeof(out));
		rc = mapfile_read(text, n, MAPFILE_MAP, &st, collect, &out, err, sizeof(err));
		CHECK("ddrescue's mapfile reads", rc == 0 && out.n >= 4 && st.present);
		out.i = 0;
		t.len = 0;
		struct mapfile_header h2 = hdr;
		h2.current_pos = st.current_pos;
		rc = mapfile_write(&h2, next_block, &out, to_text, &t);
		snprintf(path, sizeof(path), "%s/ours", dir);
		f = fopen(path, "w");
		if (f) {
			fwrite(t.buf, 1, t.len, f);
			fclose(f);
		}
		snprintf(cmd, sizeof(cmd), "cd %s && ddrescuelog -t map | grep -v 'current pos' > a && "
			 "ddrescuelog -t ours | grep -v 'current pos' > b && cmp -s a b", dir);
		CHECK("ddrescuelog -t accepts our mapfile with the same totals", rc == 0 && run(cmd) == 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	run(cmd);
	return CHECK_DONE();
}
