/* Console command options as data: each command describes its options in one table, and
 * opts_parse() checks a command line against it, so every command takes numbers, sizes and
 * choices the same way and explains a bad one the same way. */
#ifndef LIB_OPTS_H
#define LIB_OPTS_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

enum opt_kind {
	OPT_FLAG,       /* a word as written in the table ("--yes", "verify"): sets a bool */
	OPT_NUM,        /* name=N, decimal or 0x hex, within [min, max]: a uint64_t */
	OPT_SIZE,       /* name=B with the size suffixes of args_size_in: a uint64_t */
	OPT_ENUM,       /* name=<one of choices>: the choice's index, a uint64_t */
	OPT_TEXT,       /* name=<anything>: a const char * into argv */
};

struct opt {
	const char *name;
	enum opt_kind kind;
	size_t off;                    /* offsetof() the field in the command's option struct */
	uint64_t min, max;             /* NUM, SIZE: inclusive bounds (max 0: no bound) */
	bool sectors;                  /* SIZE: a whole number of sectors (and `s` is a sector) */
	const char *const *choices;    /* ENUM: NULL-terminated */
};

#define OPT_FLAG_(name, type, field) { name, OPT_FLAG, offsetof(type, field), 0, 0, false, NULL }
#define OPT_NUM_(name, type, field, min, max) { name, OPT_NUM, offsetof(type, field), min, max, false, NULL }
#define OPT_SIZE_(name, type, field, min, max, sectors) \
	{ name, OPT_SIZE, offsetof(type, field), min, max, sectors, NULL }
#define OPT_ENUM_(name, type, field, choices) { name, OPT_ENUM, offsetof(type, field), 0, 0, false, choices }
#define OPT_TEXT_(name, type, field) { name, OPT_TEXT, offsetof(type, field), 0, 0, false, NULL }
#define OPT_END { NULL, OPT_FLAG, 0, 0, 0, false, NULL }

/* Parses argv[0..argc) (the words after the command's fixed arguments) against tab into out.
 * Words that are no option are positional: their indices go to pos[] (at most maxpos).
 * sector: the sector size sizes count in (0: none). Fields not named keep their values, so the
 * caller sets the defaults first. On a bad word: -E_USAGE with one line in why (which option,
 * what is wrong with it, what would do), and out may be half-filled: the caller changes
 * nothing until opts_parse has succeeded. */
int opts_parse(const struct opt *tab, void *out, uint32_t sector, int argc, char **argv, int *pos,
	       int maxpos, int *npos, char *why, size_t whylen);

#endif
