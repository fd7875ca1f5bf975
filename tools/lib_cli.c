/* The host tools' option parsing (lib_cli.h): getopt_long and lib/args, with one kind of message. */
#include <stdio.h>
#include <string.h>
#include "lib_cli.h"
#include "../lib/args.h"

int cli_getopt(const char *prog, int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	/* ':' first (after a '+': stop at the first word that is no option): a missing value is told
	 * apart from an unknown option. */
	char spec[64];
	if (shortopts[0] == '+')
		snprintf(spec, sizeof(spec), "+:%s", shortopts + 1);
	else
		snprintf(spec, sizeof(spec), ":%s", shortopts);
	opterr = 0;
	int c = getopt_long(argc, argv, spec, longopts, NULL);
	if (c != '?' && c != ':')
		return c;
	/* A long option is the word getopt stopped at; a short one (perhaps in a cluster) its letter. */
	const char *word = optind > 1 && optind - 1 < argc ? argv[optind - 1] : "";
	char shortname[3] = { '-', (char)optopt, 0 };
	if (strncmp(word, "--", 2))
		word = shortname;
	if (c == ':')
		fprintf(stderr, "%s: %s needs a value\n", prog, word);
	else
		fprintf(stderr, "%s: unknown option '%s'\n", prog, word);
	return '?';
}

int cli_operands(const char *prog, int argc, char **argv, const char *usage, int min, int max)
{
	static const struct option longs[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	int c = cli_getopt(prog, argc, argv, "h", longs);
	if (c == 'h') {
		fputs(usage, stdout);
		return 0;
	}
	if (c != -1 || argc - optind < min || argc - optind > max) {
		fputs(usage, stderr);
		return 2;
	}
	return -1;
}

static int bounded(const char *prog, const char *opt, const char *v, uint64_t x, uint64_t min, uint64_t max,
		   uint64_t *out)
{
	if (x < min || (max && x > max)) {
		if (max)
			fprintf(stderr, "%s: %s %s: not within %llu..%llu\n", prog, opt, v, (unsigned long long)min,
				(unsigned long long)max);
		else
			fprintf(stderr, "%s: %s %s: less than %llu\n", prog, opt, v, (unsigned long long)min);
		return -1;
	}
	*out = x;
	return 0;
}

int cli_u64(const char *prog, const char *opt, const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t x;
	if (args_u64(v, &x) < 0) {
		fprintf(stderr, "%s: %s %s: not a number (decimal or 0x hex)\n", prog, opt, v);
		return -1;
	}
	return bounded(prog, opt, v, x, min, max, out);
}

int cli_size(const char *prog, const char *opt, const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t x;
	if (args_size(v, &x) < 0) {
		fprintf(stderr, "%s: %s %s: not a size (a number with k, M, G, T, KiB..TiB, kB..TB: 4096, 64k, 1MiB)\n",
			prog, opt, v);
		return -1;
	}
	return bounded(prog, opt, v, x, min, max, out);
}

int cli_hex(const char *prog, const char *opt, const char *v, uint8_t *out, uint32_t max, uint32_t *len)
{
	if (args_hex(v, out, max, len) < 0) {
		fprintf(stderr, "%s: %s %s: 1 to %u bytes as hex digits (DEADBEEF, 0x optional)\n", prog, opt, v, max);
		return -1;
	}
	return 0;
}
