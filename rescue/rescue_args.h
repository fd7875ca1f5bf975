/* The options of `rescue` and `clone` (docs/console.md, docs/rescue.md) as one lib/opts table. */
#ifndef RESCUE_RESCUE_ARGS_H
#define RESCUE_RESCUE_ARGS_H

#include "rescue.h"
#include "../lib/opts.h"

struct rescue_args {
	struct rescue_opts opt;
	const char *domain;        /* domain=<spec> for this run (NULL: the overlay's own) */
};

extern const struct opt rescue_opt_table[];

/* The defaults (rescue_opts_default), then argv's words into a; sizes count in lsize-byte
 * sectors. The words that are no option (the overlay, the clone target: at most maxpos) go to
 * r->pos. 0, or -E_USAGE with r->why. */
int rescue_args_parse(struct rescue_args *a, uint32_t lsize, int argc, char **argv, int maxpos,
		      struct opts_result *r);

#endif
