/* `set`: runtime settings registered by any file with SETTING(); the shell's own live here. */
#include "settings.h"
#include "console.h"
#include "log.h"
#include "shell.h"
#include "../lib/args.h"
#include "../lib/opts.h"
#include "../lib/errors.h"
#include "../lib/port.h"

static uint64_t progress = PROGRESS_LIVE, loglevel = LOG_INFO, on_error = ON_ERROR_PROMPT;
static const char *const progress_names[] = { "live", "lines", NULL };
static const char *const loglevel_names[] = { "err", "warn", "info", "debug", NULL };
static const char *const on_error_names[] = { "prompt", "poweroff", NULL };

SETTING(progress, "progress", "live progress line, or one line per update", &progress,
	progress_names, 0, 1);
SETTING(loglevel, "loglevel", "lowest event level printed on the console", &loglevel,
	loglevel_names, 0, 3);
SETTING(on_error, "on-error", "what a failing boot script does", &on_error, on_error_names, 0, 1);

uint64_t setting_progress(void) { return progress; }
uint64_t setting_loglevel(void) { return loglevel; }
uint64_t setting_on_error(void) { return on_error; }

static void print_setting(const struct setting *s)
{
	char val[32];
	if (s->format)
		s->format(*s->value, val, sizeof(val));
	else if (s->choices)
		fmt_snprintf(val, sizeof(val), "%s", s->choices[*s->value]);
	else
		fmt_snprintf(val, sizeof(val), "%llu", (unsigned long long)*s->value);
	kprintf("  %-14s = %-10s %s\n", s->key, val, s->help);
}

/* A setting with choices is an enum, one without a number within [min, max]: checked by the
 * option parser every command uses (lib/opts.h), so `set` reads numbers as they do. */
static int parse_value(const struct setting *s, const char *text, uint64_t *v)
{
	if (s->parse)
		return s->parse(text, v);
	struct opt o = { .name = s->key, .kind = s->choices ? OPT_ENUM : OPT_NUM, .width = sizeof(*v),
			 .min = s->min, .max = s->max, .choices = s->choices };
	char word[64], why[160];
	fmt_snprintf(word, sizeof(word), "%s=%s", s->key, text);
	if (opts_value(&o, v, 0, word, text, why, sizeof(why)) < 0) {
		kprintf("set: %s\n", why);
		return cmd_said(-E_INVAL);
	}
	return 0;
}

static int cmd_set(int argc, char **argv)
{
	if (argc == 1) {
		for_each_table_entry(s, set, const struct setting)
			print_setting(s);
		return 0;
	}
	/* Validate every assignment before applying any: bad input changes nothing. */
	uint64_t vals[ARGS_MAX];
	const struct setting *which[ARGS_MAX];
	for (int i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq || eq == argv[i])
			return -E_USAGE;
		*eq = '\0';
		which[i] = NULL;
		for_each_table_entry(s, set, const struct setting)
			if (!strcmp(s->key, argv[i]))
				which[i] = s;
		if (!which[i]) {
			kprintf("set: unknown setting '%s' (type set to list them)\n", argv[i]);
			return cmd_said(-E_NOENT);
		}
		int rc = parse_value(which[i], eq + 1, &vals[i]);
		if (rc < 0)
			return rc;
	}
	for (int i = 1; i < argc; i++) {
		*which[i]->value = vals[i];
		if (which[i]->changed)
			which[i]->changed();
		print_setting(which[i]);
	}
	return 0;
}
COMMAND(set, "set [<key>=<value> ...]", "show or change runtime settings",
	"Without arguments lists every setting with its value. Values are checked before any is changed.",
	cmd_set);
