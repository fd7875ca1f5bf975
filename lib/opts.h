/* Console command options as data: each command describes its options in one table, and
 * opts_parse() checks a command line against it, so every command takes numbers, sizes and
 * choices the same way and explains a bad one the same way. */
#ifndef LIB_OPTS_H
#define LIB_OPTS_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

enum opt_kind {
	OPT_FLAG,       /* a word as written in the table ("--yes", "verify"): the field becomes 1 */
	OPT_NUM,        /* name=N, decimal or 0x hex (lib/args.h), within [min, max] */
	OPT_SIZE,       /* name=B with the size suffixes of args_size_in, within [min, max] */
	OPT_SIZES,      /* name=B or name=B,B2 (B2 >= B): B in the field, B2 in field2 */
	OPT_ENUM,       /* name=<one of choices>: the choice's index */
	OPT_SET,        /* name=<choice>[,<choice>...]: bit i for choice i */
	OPT_HEX,        /* name=<hex bytes> (args_hex, at most max): the bytes at the field, the count in field2 */
	OPT_TEXT,       /* name=<anything>: a const char * into argv */
	OPT_POS,        /* name=<anything> is a positional word, no option (a disk named serial=<serial>) */
};

struct opt {
	const char *name;
	enum opt_kind kind;
	size_t off;                    /* offsetof() the field in the command's option struct */
	uint8_t width;                 /* sizeof the field: an integer of 1, 2, 4 or 8 bytes (or bool) */
	size_t off2;                   /* SIZES, HEX: the second field */
	uint8_t width2;
	uint64_t min, max;             /* NUM, SIZE(S): inclusive bounds (max 0: what the field holds); HEX: max bytes */
	bool sectors;                  /* SIZE(S): a whole number of sectors (and `s` is a sector) */
	const char *const *choices;    /* ENUM, SET: NULL-terminated */
	uint8_t group;                 /* not 0: at most one option of the group may be named */
};

#define OPT_F_(type, field) .off = offsetof(type, field), .width = sizeof(((type *)0)->field)
#define OPT_F2_(type, field) .off2 = offsetof(type, field), .width2 = sizeof(((type *)0)->field)
/* Each takes optional designators after its arguments, e.g. `.group = 1`. */
#define OPT_FLAG_(name_, type, field, ...) { .name = name_, .kind = OPT_FLAG, OPT_F_(type, field), __VA_ARGS__ }
#define OPT_NUM_(name_, type, field, min_, max_, ...) \
	{ .name = name_, .kind = OPT_NUM, OPT_F_(type, field), .min = min_, .max = max_, __VA_ARGS__ }
#define OPT_SIZE_(name_, type, field, min_, max_, sectors_, ...) \
	{ .name = name_, .kind = OPT_SIZE, OPT_F_(type, field), .min = min_, .max = max_, .sectors = sectors_, __VA_ARGS__ }
#define OPT_SIZES_(name_, type, field, field2, min_, max_, sectors_, ...) \
	{ .name = name_, .kind = OPT_SIZES, OPT_F_(type, field), OPT_F2_(type, field2), .min = min_, .max = max_, \
	  .sectors = sectors_, __VA_ARGS__ }
#define OPT_ENUM_(name_, type, field, choices_, ...) \
	{ .name = name_, .kind = OPT_ENUM, OPT_F_(type, field), .choices = choices_, __VA_ARGS__ }
#define OPT_SET_(name_, type, field, choices_, ...) \
	{ .name = name_, .kind = OPT_SET, OPT_F_(type, field), .choices = choices_, __VA_ARGS__ }
#define OPT_HEX_(name_, type, field, count, ...) \
	{ .name = name_, .kind = OPT_HEX, OPT_F_(type, field), OPT_F2_(type, count), .max = sizeof(((type *)0)->field), \
	  __VA_ARGS__ }
#define OPT_TEXT_(name_, type, field, ...) \
	{ .name = name_, .kind = OPT_TEXT, .off = offsetof(type, field), .width = sizeof(const char *), __VA_ARGS__ }
#define OPT_POS_(name_) { .name = name_, .kind = OPT_POS }
#define OPT_END { .name = NULL }

#define OPTS_MAXPOS 4
struct opts_result {
	int pos[OPTS_MAXPOS];          /* argv indices of the words that are no option, in order */
	int npos;
	uint64_t given;                /* bit i: tab[i] was named */
	char why[160];                 /* after a refusal: one line (which word, what is wrong, what would do) */
};

/* Parses argv[0..argc) against tab into out. A word is an option when it is `--...` or
 * `name=...` with a name of letters, digits and '-' (`ntfs:/a=b` is not one); the other words
 * are positional, at most maxpos (<= OPTS_MAXPOS). sector: the sector size sizes count in (0:
 * none). Fields not named keep their values, so the caller sets the defaults first. On a bad
 * word: -E_USAGE with r->why set, and out may be half-filled: the caller changes nothing
 * until opts_parse has succeeded. */
int opts_parse(const struct opt *tab, void *out, uint32_t sector, int argc, char **argv, int maxpos,
	       struct opts_result *r);
/* Whether the word was named: "random" a flag, "random=" the option that takes a value. */
bool opts_given(const struct opt *tab, const struct opts_result *r, const char *word);
/* One value v of option o into out (typed: the word as typed, named in the reason): what `set`
 * uses for a single key=value. 0, or -E_USAGE with why. */
int opts_value(const struct opt *o, void *out, uint32_t sector, const char *typed, const char *v, char *why,
	       size_t whylen);

#endif
