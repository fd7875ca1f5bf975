/* The option-table parser (lib/opts.h): one way for every command to read its options. */
#include "opts.h"
#include "args.h"
#include "errors.h"
#include "port.h"

#define bad(...) (fmt_snprintf(why, whylen, __VA_ARGS__), -E_USAGE)

static const struct opt *lookup(const struct opt *tab, const char *word, const char **val)
{
	for (const struct opt *o = tab; o->name; o++) {
		size_t n = strlen(o->name);
		if (o->kind == OPT_FLAG ? !strcmp(word, o->name) : !strncmp(word, o->name, n) && word[n] == '=') {
			*val = o->kind == OPT_FLAG ? NULL : word + n + 1;
			return o;
		}
	}
	return NULL;
}

static int take(const struct opt *o, void *out, uint32_t sector, const char *word, const char *v, char *why,
		size_t whylen)
{
	void *field = (char *)out + o->off;
	uint64_t x = 0;
	switch (o->kind) {
	case OPT_FLAG:
		*(bool *)field = true;
		return 0;
	case OPT_TEXT:
		if (!*v)
			return bad("%s: needs a value", word);
		*(const char **)field = v;
		return 0;
	case OPT_ENUM:
		for (uint64_t i = 0; o->choices[i]; i++)
			if (!strcmp(v, o->choices[i])) {
				*(uint64_t *)field = i;
				return 0;
			}
		{
			char list[120] = "";
			size_t at = 0;
			for (unsigned i = 0; o->choices[i] && at < sizeof(list); i++)
				at += (size_t)fmt_snprintf(list + at, sizeof(list) - at, "%s%s", i ? ", " : "", o->choices[i]);
			return bad("%s: one of %s", word, list);
		}
	case OPT_NUM:
		if (args_u64(v, &x) < 0)
			return bad("%s: not a number (decimal or 0x hex)", word);
		break;
	case OPT_SIZE:
		if (args_size_in(v, o->sectors ? sector : 0, &x) < 0)
			return bad("%s: not a size (a number with k, M, G, T, KiB..TiB, kB..TB%s)", word,
				   o->sectors && sector ? " or s for sectors" : "");
		if (o->sectors && sector && x % sector)
			return bad("%s: not a whole number of %u-byte sectors", word, sector);
		break;
	}
	if (x < o->min)
		return bad("%s: less than %llu", word, (unsigned long long)o->min);
	if (o->max && x > o->max)
		return bad("%s: more than %llu", word, (unsigned long long)o->max);
	*(uint64_t *)field = x;
	return 0;
}

int opts_parse(const struct opt *tab, void *out, uint32_t sector, int argc, char **argv, int *pos,
	       int maxpos, int *npos, char *why, size_t whylen)
{
	uint64_t seen = 0;   /* one bit an option: the second time a word names one is a mistake */
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *v, *w = argv[i];
		const struct opt *o = lookup(tab, w, &v);
		if (!o) {
			if (strchr(w, '=') || (w[0] == '-' && w[1] == '-'))
				return bad("%s: no such option", w);
			if (*npos == maxpos)
				return bad("%s: one word too many", w);
			pos[(*npos)++] = i;
			continue;
		}
		uint64_t bit = 1ull << ((o - tab) & 63);
		if (seen & bit)
			return bad("%s: given twice", o->name);
		seen |= bit;
		int rc = take(o, out, sector, w, v, why, whylen);
		if (rc < 0)
			return rc;
	}
	return 0;
}
