/* The option-table parser (lib/opts.h): one way for every command to read its options. */
#include "opts.h"
#include "args.h"
#include "errors.h"
#include "port.h"

#define bad(...) (fmt_snprintf(why, whylen, __VA_ARGS__), -E_USAGE)

static uint64_t width_max(uint8_t width)
{
	return width >= 8 ? UINT64_MAX : (1ull << (8 * width)) - 1;
}

static void store(void *field, uint8_t width, uint64_t v)
{
	switch (width) {
	case 1: *(uint8_t *)field = (uint8_t)v; break;
	case 2: *(uint16_t *)field = (uint16_t)v; break;
	case 4: *(uint32_t *)field = (uint32_t)v; break;
	default: *(uint64_t *)field = v; break;
	}
}

/* "a, b, c" into list. */
static void choice_list(const char *const *choices, char *list, size_t n)
{
	size_t at = 0;
	list[0] = '\0';
	for (unsigned i = 0; choices[i] && at < n; i++)
		at += (size_t)fmt_snprintf(list + at, n - at, "%s%s", i ? ", " : "", choices[i]);
}

static int choice_index(const char *const *choices, const char *v, size_t len)
{
	for (int i = 0; choices[i]; i++)
		if (strlen(choices[i]) == len && !strncmp(v, choices[i], len))
			return i;
	return -1;
}

/* One size of a SIZE(S) option, its bounds and the sector rule checked. */
static int one_size(const struct opt *o, uint32_t sector, const char *word, const char *v, uint64_t *x, char *why,
		    size_t whylen)
{
	bool in_sectors = o->sectors && sector;
	if (args_size_in(v, in_sectors ? sector : 0, x) < 0)
		return bad("%s: not a size (a number with k, M, G, T, KiB..TiB, kB..TB%s)", word,
			   in_sectors ? " or s for sectors" : "");
	if (in_sectors && *x % sector)
		return bad("%s: not a whole number of %u-byte sectors", word, sector);
	return 0;
}

static int bounds(const struct opt *o, uint8_t width, const char *word, uint64_t x, char *why, size_t whylen)
{
	uint64_t max = o->max && o->max < width_max(width) ? o->max : width_max(width);
	if (x < o->min)
		return bad("%s: less than %llu", word, (unsigned long long)o->min);
	if (x > max)
		return bad("%s: more than %llu", word, (unsigned long long)max);
	return 0;
}

int opts_value(const struct opt *o, void *out, uint32_t sector, const char *typed, const char *v, char *why,
	       size_t whylen)
{
	void *field = (char *)out + o->off;
	char list[120], word[48];
	uint64_t x = 0;
	int rc;
	/* The word as typed, cut short: a long one must not push the reason out of the line. */
	fmt_snprintf(word, sizeof(word), strlen(typed) < sizeof(word) ? "%s" : "%.40s...", typed);
	switch (o->kind) {
	case OPT_POS:
		return 0;
	case OPT_FLAG:
		store(field, o->width, 1);
		return 0;
	case OPT_TEXT:
		if (!*v)
			return bad("%s: needs a value", word);
		*(const char **)field = v;
		return 0;
	case OPT_ENUM: {
		int i = choice_index(o->choices, v, strlen(v));
		if (i < 0) {
			choice_list(o->choices, list, sizeof(list));
			return bad("%s: one of %s", word, list);
		}
		store(field, o->width, (uint64_t)i);
		return 0;
	}
	case OPT_SET: {
		uint64_t mask = 0;
		for (const char *p = v; *p;) {
			const char *end = strchr(p, ',');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			int i = choice_index(o->choices, p, len);
			if (i < 0) {
				choice_list(o->choices, list, sizeof(list));
				return bad("%s: '%.*s' is not one of %s", word, (int)len, p, list);
			}
			mask |= 1ull << i;
			p += len + (end ? 1 : 0);
		}
		if (!mask) {
			choice_list(o->choices, list, sizeof(list));
			return bad("%s: some of %s, with commas between", word, list);
		}
		store(field, o->width, mask);
		return 0;
	}
	case OPT_HEX: {
		uint32_t len;
		if (args_hex(v, field, (uint32_t)o->max, &len) < 0)
			return bad("%s: 1 to %llu bytes of hex (e.g. deadbeef, 0x optional)", word,
				   (unsigned long long)o->max);
		store((char *)out + o->off2, o->width2, len);
		return 0;
	}
	case OPT_NUM:
		if (args_u64(v, &x) < 0)
			return bad("%s: not a number (decimal or 0x hex)", word);
		break;
	case OPT_SIZE:
		if ((rc = one_size(o, sector, word, v, &x, why, whylen)) < 0)
			return rc;
		break;
	case OPT_SIZES: {
		const char *comma = strchr(v, ',');
		char first[32];
		size_t len = comma ? (size_t)(comma - v) : strlen(v);
		uint64_t y;
		if (len >= sizeof(first))
			return bad("%s: not a size", word);
		memcpy(first, v, len);
		first[len] = '\0';
		if ((rc = one_size(o, sector, word, first, &x, why, whylen)) < 0 ||
		    (rc = bounds(o, o->width, word, x, why, whylen)) < 0)
			return rc;
		if (comma) {
			if ((rc = one_size(o, sector, word, comma + 1, &y, why, whylen)) < 0 ||
			    (rc = bounds(o, o->width2, word, y, why, whylen)) < 0)
				return rc;
			if (y < x)
				return bad("%s: the second size is less than the first", word);
			store((char *)out + o->off2, o->width2, y);
		}
		store(field, o->width, x);
		return 0;
	}
	}
	if ((rc = bounds(o, o->width, word, x, why, whylen)) < 0)
		return rc;
	store(field, o->width, x);
	return 0;
}

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

/* `--anything`, or `name=...` with a name an option could have: a word meant as an option,
 * refused when no option has it (a typo must not become a positional argument). */
static bool option_like(const char *w)
{
	if (w[0] == '-' && w[1] == '-')
		return true;
	const char *p = w;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
	       *p == '_')
		p++;
	return p > w && *p == '=';
}

int opts_parse(const struct opt *tab, void *out, uint32_t sector, int argc, char **argv, int maxpos,
	       struct opts_result *r)
{
	char *why = r->why;
	size_t whylen = sizeof(r->why);
	const char *group_word[8] = { 0 };   /* the word that named each group */
	r->npos = 0;
	r->given = 0;
	r->why[0] = '\0';
	if (maxpos > OPTS_MAXPOS)
		maxpos = OPTS_MAXPOS;
	for (int i = 0; i < argc; i++) {
		const char *v, *w = argv[i];
		const struct opt *o = lookup(tab, w, &v);
		if (!o || o->kind == OPT_POS) {
			if (!o && option_like(w))
				return bad("%s: no such option", w);
			if (r->npos == maxpos)
				return bad("%s: one word too many", w);
			r->pos[r->npos++] = i;
			continue;
		}
		uint64_t bit = 1ull << ((o - tab) & 63);
		if (r->given & bit)
			return bad("%s: given twice", o->name);
		r->given |= bit;
		if (o->group) {
			const char **g = &group_word[o->group & 7];
			if (*g)
				return bad("%s, %s: one or the other", *g, w);
			*g = w;
		}
		int rc = opts_value(o, out, sector, w, v, why, whylen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

bool opts_given(const struct opt *tab, const struct opts_result *r, const char *word)
{
	for (int i = 0; tab[i].name && i < 64; i++) {
		size_t n = strlen(tab[i].name);
		bool same = tab[i].kind == OPT_FLAG ? !strcmp(word, tab[i].name)
						    : !strncmp(word, tab[i].name, n) && word[n] == '=' && !word[n + 1];
		if (same && (r->given >> i & 1))
			return true;
	}
	return false;
}
