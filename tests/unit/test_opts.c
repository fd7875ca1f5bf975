/* lib/opts.c: every kind of option, its bounds and its messages, and positional words. */
#include <stdio.h>
#include <string.h>
#include "../lib/check.h"
#include "../../lib/errors.h"
#include "../../lib/opts.h"

struct o { bool yes, verify; uint64_t retries, cluster, mode; const char *domain; };
static const char *const modes[] = { "zero", "pattern", "random", NULL };
static const struct opt tab[] = {
	OPT_FLAG_("--yes", struct o, yes),
	OPT_FLAG_("verify", struct o, verify),
	OPT_NUM_("retries", struct o, retries, 0, 1000),
	OPT_SIZE_("cluster", struct o, cluster, 512, 8u << 20, true),
	OPT_ENUM_("mode", struct o, mode, modes),
	OPT_TEXT_("domain", struct o, domain),
	OPT_END,
};

static int run(const char *line, struct o *o, int *pos, int *npos, char *why)
{
	static char buf[256];
	char *argv[16];
	snprintf(buf, sizeof(buf), "%s", line);
	int argc = 0;
	for (char *t = strtok(buf, " "); t && argc < 16; t = strtok(NULL, " "))
		argv[argc++] = t;
	memset(o, 0, sizeof(*o));
	o->retries = 1;
	why[0] = 0;
	return opts_parse(tab, o, 512, argc, argv, pos, 2, npos, why, 120);
}

int main(void)
{
	struct o o;
	int pos[2], n;
	char why[120];
	CHECK("all kinds parse", run("--yes verify retries=010 cluster=64k mode=random domain=ntfs:*.jpg", &o, pos, &n, why) == 0 &&
	      o.yes && o.verify && o.retries == 10 && o.cluster == 65536 && o.mode == 2 && !strcmp(o.domain, "ntfs:*.jpg") && n == 0);
	CHECK("defaults stay when not named", run("", &o, pos, &n, why) == 0 && o.retries == 1 && !o.yes);
	CHECK("positional words are returned in order", run("vd1 retries=2 vd2", &o, pos, &n, why) == 0 && n == 2 &&
	      pos[0] == 0 && pos[1] == 2);
	CHECK("one positional too many", run("a b c", &o, pos, &n, why) == -E_USAGE && strstr(why, "c: one word too many"));
	CHECK("sizes in sectors", run("cluster=128s", &o, pos, &n, why) == 0 && o.cluster == 65536);
	CHECK("1MB is a decimal size", run("cluster=1MB", &o, pos, &n, why) == -E_USAGE &&
	      strstr(why, "not a whole number of 512-byte sectors"));
	CHECK("1MiB is binary", run("cluster=1MiB", &o, pos, &n, why) == 0 && o.cluster == 1u << 20);
	CHECK("a bound is named", run("retries=5000", &o, pos, &n, why) == -E_USAGE && !strcmp(why, "retries=5000: more than 1000"));
	CHECK("a minimum is named", run("cluster=0", &o, pos, &n, why) == -E_USAGE && strstr(why, "cluster=0: less than 512"));
	CHECK("not a number", run("retries=ten", &o, pos, &n, why) == -E_USAGE && strstr(why, "not a number"));
	CHECK("an enum lists its choices", run("mode=ones", &o, pos, &n, why) == -E_USAGE &&
	      !strcmp(why, "mode=ones: one of zero, pattern, random"));
	CHECK("an unknown key=value is refused", run("retry=3", &o, pos, &n, why) == -E_USAGE && strstr(why, "no such option"));
	CHECK("an unknown --flag is refused", run("--force", &o, pos, &n, why) == -E_USAGE && strstr(why, "no such option"));
	CHECK("twice is refused", run("retries=1 retries=2", &o, pos, &n, why) == -E_USAGE && strstr(why, "given twice"));
	CHECK("empty text is refused", run("domain=", &o, pos, &n, why) == -E_USAGE && strstr(why, "needs a value"));
	return CHECK_DONE();
}
