/* rescue/rescue_args.c: the rescue options' table reads every word as the console always did
 * (checked word by word against rescue_parse_opt), and numbers are numbers, not sizes. */
#include <stdio.h>
#include <string.h>
#include "../lib/check.h"
#include "../../lib/errors.h"
#include "../../rescue/rescue_args.h"

#define LS 512

/* The table and the old one-word parser on one word: both refuse it, or both give the same options. */
static int same(const char *word)
{
	struct rescue_args a;
	struct rescue_opts old;
	struct opts_result r;
	char why[160], buf[64];
	char *argv[1] = { buf };
	snprintf(buf, sizeof(buf), "%s", word);
	int rc_new = rescue_args_parse(&a, LS, 1, argv, 0, &r);
	rescue_opts_default(&old);
	int rc_old = rescue_parse_opt(&old, word, LS, why, sizeof(why));
	if (rc_new < 0 || rc_old < 0)
		return rc_new < 0 && rc_old < 0;
	return !memcmp(&a.opt, &old, sizeof(old));
}

static int refused(const char *line, const char *msg)
{
	static char buf[256];
	char *argv[8];
	int argc = 0;
	struct rescue_args a;
	struct opts_result r;
	snprintf(buf, sizeof(buf), "%s", line);
	for (char *t = strtok(buf, " "); t && argc < 8; t = strtok(NULL, " "))
		argv[argc++] = t;
	int rc = rescue_args_parse(&a, LS, argc, argv, 1, &r);
	if (rc != -E_USAGE || !strstr(r.why, msg)) {
		printf("  %s -> %d '%s'\n", line, rc, r.why);
		return 0;
	}
	return 1;
}

int main(void)
{
	static const char *const words[] = {
		"retries=0", "retries=3", "retries=010", "retries=0x10", "retries=1000", "retries=1001", "retries=x", "retries=",
		"cluster=512", "cluster=128KiB", "cluster=64k", "cluster=8M", "cluster=9M", "cluster=1000", "cluster=0",
		"cluster=16s", "cluster=1MB", "max-read=0", "max-read=1MiB", "max-read=2s", "max-read=100", "max-read=16M",
		"skip=64k", "skip=64k,4M", "skip=1M,64k", "skip=512", "skip=0", "skip=100", "skip=64k,", "skip=,4M",
		"skip=8s,16s", "reverse", "timeout=10", "timeout=9", "timeout=600000", "timeout=600001", "timeout=1000",
		"min-rate=0", "min-rate=1M", "min-rate=100", "min-rate=1x", "passes=copy", "passes=copy,trim",
		"passes=copy,trim,scrape,interiors,retry", "passes=", "passes=copy,,trim", "passes=fast", "infer=on",
		"infer=off", "infer=maybe", "commit=100", "commit=99", "commit=3600000", "commit=3600001", "speed=9",
		"reversed", NULL,
	};
	int bad = 0;
	for (int i = 0; words[i]; i++)
		if (!same(words[i])) {
			printf("  differs: %s\n", words[i]);
			bad++;
		}
	CHECK("every option word reads as rescue_parse_opt reads it", bad == 0);

	struct rescue_args a;
	struct opts_result r;
	char l[] = "ov0 retries=2 domain=ntfs:*.jpg reverse";
	char *argv[4] = { l, l + 4, l + 14, l + 32 };
	l[3] = l[13] = l[31] = '\0';
	CHECK("the overlay is positional, domain= is kept as text", rescue_args_parse(&a, LS, 4, argv, 1, &r) == 0 &&
	      r.npos == 1 && r.pos[0] == 0 && a.opt.retries == 2 && a.opt.reverse && !strcmp(a.domain, "ntfs:*.jpg") &&
	      a.opt.cluster == 64 * 1024 && a.opt.timeout_ms == 5000);
	CHECK("a number is no size", refused("ov0 retries=1k", "retries=1k: not a number"));
	CHECK("a bad value is named with what would do", refused("ov0 timeout=5", "timeout=5: less than 10"));
	CHECK("an unknown option is named", refused("ov0 speed=9", "speed=9: no such option"));
	CHECK("a word too many is named", refused("ov0 vd3", "vd3: one word too many"));
	CHECK("a bad phase is named", refused("ov0 passes=copy,tirm", "'tirm' is not one of copy, trim"));
	CHECK("an option given twice", refused("ov0 retries=1 retries=2", "retries: given twice"));
	return CHECK_DONE();
}
