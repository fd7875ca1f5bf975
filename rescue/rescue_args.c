/* The rescue and clone options as data: bounds as rescue/rescue.c needs them, in one table. */
#include "rescue_args.h"
#include "../lib/port.h"

#define MIB (1024ull * 1024)

/* In the order of the RESCUE_PASS_* bits. */
static const char *const pass_names[] = { "copy", "trim", "scrape", "retry", "interiors", NULL };
static const char *const on_off[] = { "on", "off", NULL };   /* into no_infer */

const struct opt rescue_opt_table[] = {
	OPT_NUM_("retries", struct rescue_args, opt.retries, 0, 1000),
	OPT_SIZE_("cluster", struct rescue_args, opt.cluster, 512, 8 * MIB, true),
	OPT_SIZE_("max-read", struct rescue_args, opt.max_read, 0, 8 * MIB, true),
	OPT_SIZES_("skip", struct rescue_args, opt.skip_min, opt.skip_max, 512, 0, true),
	OPT_FLAG_("reverse", struct rescue_args, opt.reverse),
	OPT_NUM_("timeout", struct rescue_args, opt.timeout_ms, 10, 600000),
	OPT_SIZE_("min-rate", struct rescue_args, opt.min_rate, 0, 0, false),
	OPT_SET_("passes", struct rescue_args, opt.passes, pass_names),
	OPT_ENUM_("infer", struct rescue_args, opt.no_infer, on_off),
	OPT_NUM_("commit", struct rescue_args, opt.commit_ms, 100, 3600000),
	OPT_TEXT_("domain", struct rescue_args, domain),
	OPT_POS_("serial"),   /* the clone's target disk, named by its serial */
	OPT_END,
};

int rescue_args_parse(struct rescue_args *a, uint32_t lsize, int argc, char **argv, int maxpos,
		      struct opts_result *r)
{
	memset(a, 0, sizeof(*a));
	rescue_opts_default(&a->opt);
	return opts_parse(rescue_opt_table, a, lsize, argc, argv, maxpos, r);
}
