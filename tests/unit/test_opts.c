/* lib/opts.c: every kind of option, its bounds and its messages, and positional words. */
#include <stdio.h>
#include <string.h>
#include "../lib/check.h"
#include "../../lib/errors.h"
#include "../../lib/opts.h"

struct o {
	bool yes, verify, zero, random;
	uint64_t retries, cluster, mode, lo, hi, seed;
	uint32_t passes, timeout;
	int no_infer;
	uint8_t small;
	uint8_t pat[4];
	uint32_t patlen;
	const char *domain;
};
static const char *const modes[] = { "zero", "pattern", "random", NULL };
static const char *const phases[] = { "copy", "trim", "scrape", NULL };
static const char *const on_off[] = { "on", "off", NULL };
static const struct opt tab[] = {
	OPT_FLAG_("--yes", struct o, yes),
	OPT_FLAG_("verify", struct o, verify),
	OPT_NUM_("retries", struct o, retries, 0, 1000),
	OPT_SIZE_("cluster", struct o, cluster, 512, 8u << 20, true),
	OPT_ENUM_("mode", struct o, mode, modes),
	OPT_TEXT_("domain", struct o, domain),
	OPT_SIZES_("skip", struct o, lo, hi, 512, 0, true),
	OPT_SET_("passes", struct o, passes, phases),
	OPT_NUM_("timeout", struct o, timeout, 10, 0),
	OPT_ENUM_("infer", struct o, no_infer, on_off),
	OPT_NUM_("small", struct o, small, 0, 0),
	OPT_FLAG_("zero", struct o, zero, .group = 1),
	OPT_HEX_("pattern", struct o, pat, patlen, .group = 1),
	OPT_FLAG_("random", struct o, random, .group = 1),
	OPT_NUM_("random", struct o, seed, 0, 0, .group = 1),
	OPT_POS_("serial"),
	OPT_END,
};

static struct opts_result res;

static int run(const char *line, struct o *o)
{
	static char buf[256];
	char *argv[16];
	snprintf(buf, sizeof(buf), "%s", line);
	int argc = 0;
	for (char *t = strtok(buf, " "); t && argc < 16; t = strtok(NULL, " "))
		argv[argc++] = t;
	memset(o, 0, sizeof(*o));
	o->retries = 1;
	o->hi = 77;
	return opts_parse(tab, o, 512, argc, argv, 2, &res);
}

int main(void)
{
	struct o o;
	const char *why = res.why;
	CHECK("all kinds parse", run("--yes verify retries=010 cluster=64k mode=random domain=ntfs:*.jpg", &o) == 0 &&
	      o.yes && o.verify && o.retries == 10 && o.cluster == 65536 && o.mode == 2 && !strcmp(o.domain, "ntfs:*.jpg") &&
	      res.npos == 0);
	CHECK("defaults stay when not named", run("", &o) == 0 && o.retries == 1 && !o.yes);
	CHECK("positional words are returned in order", run("vd1 retries=2 vd2", &o) == 0 && res.npos == 2 &&
	      res.pos[0] == 0 && res.pos[1] == 2);
	CHECK("one positional too many", run("a b c", &o) == -E_USAGE && strstr(why, "c: one word too many"));
	CHECK("sizes in sectors", run("cluster=128s", &o) == 0 && o.cluster == 65536);
	CHECK("1MB is a decimal size", run("cluster=1MB", &o) == -E_USAGE &&
	      strstr(why, "not a whole number of 512-byte sectors"));
	CHECK("1MiB is binary", run("cluster=1MiB", &o) == 0 && o.cluster == 1u << 20);
	CHECK("a bound is named", run("retries=5000", &o) == -E_USAGE && !strcmp(why, "retries=5000: more than 1000"));
	CHECK("a minimum is named", run("cluster=0", &o) == -E_USAGE && strstr(why, "cluster=0: less than 512"));
	CHECK("not a number", run("retries=ten", &o) == -E_USAGE && strstr(why, "not a number"));
	CHECK("a number takes no size suffix", run("retries=1k", &o) == -E_USAGE && strstr(why, "not a number"));
	CHECK("an enum lists its choices", run("mode=ones", &o) == -E_USAGE &&
	      !strcmp(why, "mode=ones: one of zero, pattern, random"));
	CHECK("an unknown key=value is refused", run("retry=3", &o) == -E_USAGE && strstr(why, "no such option"));
	CHECK("an unknown --flag is refused", run("--force", &o) == -E_USAGE && strstr(why, "no such option"));
	CHECK("a word with = after a path is positional", run("ntfs:/a=b", &o) == 0 && res.npos == 1);
	CHECK("serial=<x> is a positional word, as often as it comes", run("serial=A retries=2 serial=B", &o) == 0 &&
	      res.npos == 2 && res.pos[0] == 0 && res.pos[1] == 2 && o.retries == 2);
	CHECK("a long word is cut short in the reason", run("pattern=0102030405060708090a0b0c0d0e0f101112131415161718", &o) ==
	      -E_USAGE && strstr(why, "...: 1 to 4 bytes of hex") && strlen(why) < 120);
	CHECK("twice is refused", run("retries=1 retries=2", &o) == -E_USAGE && strstr(why, "given twice"));
	CHECK("empty text is refused", run("domain=", &o) == -E_USAGE && strstr(why, "needs a value"));

	/* Field widths: a 4-byte, an int and a byte field. */
	CHECK("a 4-byte field is filled and bounded by its width", run("timeout=4294967295", &o) == 0 &&
	      o.timeout == 4294967295u && run("timeout=4294967296", &o) == -E_USAGE && strstr(why, "more than 4294967295"));
	CHECK("a byte field holds at most 255", run("small=255", &o) == 0 && o.small == 255 &&
	      run("small=256", &o) == -E_USAGE && strstr(why, "more than 255"));
	CHECK("an enum into an int", run("infer=off", &o) == 0 && o.no_infer == 1 && run("infer=on", &o) == 0 && o.no_infer == 0);

	/* One size or two. */
	CHECK("one size leaves the second field", run("skip=64k", &o) == 0 && o.lo == 65536 && o.hi == 77);
	CHECK("two sizes", run("skip=64k,4M", &o) == 0 && o.lo == 65536 && o.hi == 4u << 20);
	CHECK("the second is not less than the first", run("skip=1M,64k", &o) == -E_USAGE &&
	      strstr(why, "the second size is less than the first"));
	CHECK("both are sectors", run("skip=1k,1000", &o) == -E_USAGE && strstr(why, "512-byte sectors"));
	CHECK("the minimum applies to each", run("skip=0", &o) == -E_USAGE && strstr(why, "less than 512"));

	/* Sets. */
	CHECK("a set is a bit mask", run("passes=copy,scrape", &o) == 0 && o.passes == 5);
	CHECK("a set names the wrong member", run("passes=copy,fast", &o) == -E_USAGE &&
	      strstr(why, "'fast' is not one of copy, trim, scrape"));
	CHECK("an empty set is refused", run("passes=", &o) == -E_USAGE && strstr(why, "some of copy"));

	/* Hex bytes and groups. */
	CHECK("hex bytes, 0x optional", run("pattern=0xdeadbeef", &o) == 0 && o.patlen == 4 && o.pat[0] == 0xde &&
	      o.pat[3] == 0xef && run("pattern=5a", &o) == 0 && o.patlen == 1 && o.pat[0] == 0x5a);
	CHECK("too many hex bytes", run("pattern=0102030405", &o) == -E_USAGE && strstr(why, "1 to 4 bytes of hex"));
	CHECK("odd or bad hex", run("pattern=abc", &o) == -E_USAGE && run("pattern=xy", &o) == -E_USAGE &&
	      run("pattern=", &o) == -E_USAGE && strstr(why, "bytes of hex"));
	CHECK("one of a group", run("random=12 verify", &o) == 0 && o.seed == 12 && !o.random);
	CHECK("two of a group are refused, both named", run("zero random", &o) == -E_USAGE &&
	      !strcmp(why, "zero, random: one or the other"));
	CHECK("a flag and a value of one name", run("random random=3", &o) == -E_USAGE && strstr(why, "one or the other"));
	CHECK("opts_given tells a flag from a value", run("random", &o) == 0 && opts_given(tab, &res, "random") &&
	      !opts_given(tab, &res, "random=") && run("random=5", &o) == 0 && opts_given(tab, &res, "random=") &&
	      !opts_given(tab, &res, "random") && !opts_given(tab, &res, "zero"));

	/* One value, as `set` checks it. */
	struct opt one = { .name = "loglevel", .kind = OPT_ENUM, .width = 8, .choices = modes };
	uint64_t v = 9;
	char w[120];
	CHECK("opts_value checks one value", opts_value(&one, &v, 0, "loglevel=pattern", "pattern", w, sizeof(w)) == 0 &&
	      v == 1 && opts_value(&one, &v, 0, "loglevel=x", "x", w, sizeof(w)) == -E_USAGE && v == 1 &&
	      !strcmp(w, "loglevel=x: one of zero, pattern, random"));
	return CHECK_DONE();
}
