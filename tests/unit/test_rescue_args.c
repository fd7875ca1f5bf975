/* rescue/rescue_args.c: the rescue options' table reads every word as the console always did
 * (word by word: what each sets, or that it is refused), and numbers are numbers, not sizes. */
#include <stdio.h>
#include <string.h>
#include "../lib/check.h"
#include "../../lib/errors.h"
#include "../../rescue/rescue_args.h"

#define LS 512

/* The options a word sets, as the fields that differ from the defaults ("" for none). */
static void changed(const struct rescue_opts *o, char *out, size_t n)
{
	struct rescue_opts d;
	rescue_opts_default(&d);
	size_t k = 0;
	out[0] = '\0';
#define FIELD(name)                                                                                \
	if (o->name != d.name && k < n)                                                            \
		k += (size_t)snprintf(out + k, n - k, "%s" #name "=%llu", k ? " " : "",             \
				      (unsigned long long)o->name);
	FIELD(cluster) FIELD(max_read) FIELD(skip_min) FIELD(skip_max) FIELD(retries) FIELD(timeout_ms)
	FIELD(min_rate) FIELD(passes) FIELD(reverse) FIELD(no_infer) FIELD(commit_ms)
#undef FIELD
}

/* One word through the table: refused when want is NULL, else setting exactly want. */
static int reads_as(const char *word, const char *want)
{
	struct rescue_args a;
	struct opts_result r;
	char buf[64], got[300];
	char *argv[1] = { buf };
	snprintf(buf, sizeof(buf), "%s", word);
	int rc = rescue_args_parse(&a, LS, 1, argv, 0, &r);
	if (rc < 0)
		return !want;
	changed(&a.opt, got, sizeof(got));
	if (want && !strcmp(got, want))
		return 1;
	printf("  %s sets '%s'\n", word, got);
	return 0;
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
	/* Each word as the console has always read it (the one-word parser this table replaced gave
	 * these, with 010 ten and 1MB a million bytes); NULL: refused. */
	static const struct { const char *word, *sets; } words[] = {
		{ "retries=0", "retries=0" },
		{ "retries=3", "retries=3" },
		{ "retries=010", "retries=10" },
		{ "retries=0x10", "retries=16" },
		{ "retries=1000", "retries=1000" },
		{ "retries=1001", NULL },
		{ "retries=x", NULL },
		{ "retries=", NULL },
		{ "cluster=512", "cluster=512" },
		{ "cluster=128KiB", "cluster=131072" },
		{ "cluster=64k", "" },
		{ "cluster=8M", "cluster=8388608" },
		{ "cluster=9M", NULL },
		{ "cluster=1000", NULL },
		{ "cluster=0", NULL },
		{ "cluster=16s", "cluster=8192" },
		{ "cluster=1MB", NULL },
		{ "max-read=0", "max_read=0" },
		{ "max-read=1MiB", "" },
		{ "max-read=2s", "max_read=1024" },
		{ "max-read=100", NULL },
		{ "max-read=16M", NULL },
		{ "skip=64k", "" },
		{ "skip=64k,4M", "skip_max=4194304" },
		{ "skip=1M,64k", NULL },
		{ "skip=512", "skip_min=512" },
		{ "skip=0", NULL },
		{ "skip=100", NULL },
		{ "skip=64k,", NULL },
		{ "skip=,4M", NULL },
		{ "skip=8s,16s", "skip_min=4096 skip_max=8192" },
		{ "reverse", "reverse=1" },
		{ "timeout=10", "timeout_ms=10" },
		{ "timeout=9", NULL },
		{ "timeout=600000", "timeout_ms=600000" },
		{ "timeout=600001", NULL },
		{ "timeout=1000", "timeout_ms=1000" },
		{ "min-rate=0", "" },
		{ "min-rate=1M", "min_rate=1048576" },
		{ "min-rate=100", "min_rate=100" },
		{ "min-rate=1x", NULL },
		{ "passes=copy", "passes=1" },
		{ "passes=copy,trim", "passes=3" },
		{ "passes=copy,trim,scrape,interiors,retry", "" },
		{ "passes=", NULL },
		{ "passes=copy,,trim", NULL },
		{ "passes=fast", NULL },
		{ "infer=on", "" },
		{ "infer=off", "no_infer=1" },
		{ "infer=maybe", NULL },
		{ "commit=100", "commit_ms=100" },
		{ "commit=99", NULL },
		{ "commit=3600000", "commit_ms=3600000" },
		{ "commit=3600001", NULL },
		{ "speed=9", NULL },
		{ "reversed", NULL },
	};
	int bad = 0;
	for (unsigned i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (!reads_as(words[i].word, words[i].sets)) {
			printf("  differs: %s\n", words[i].word);
			bad++;
		}
	CHECK("every option word sets what the console always set, or is refused as it was", bad == 0);

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
