/* The command shell: the prompt with line editing, dispatch over the COMMAND table, and the
 * boot script (load options or cowboot.cfg) that runs before the prompt. */
#include "shell.h"
#include "console.h"
#include "fbcon.h"
#include "../lib/args.h"
#include "../lib/lineedit.h"
#include "../lib/script.h"
#include "log.h"
#include "power.h"
#include "script_vars.h"
#include "settings.h"
#include "task.h"
#include "../lib/errors.h"
#include "../lib/port.h"

#define PROMPT "cowboot> "

const struct command *shell_find(const char *name)
{
	for_each_table_entry(c, cmd, const struct command)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static bool failure_said;

int cmd_said(int rc)
{
	failure_said = rc < 0;
	return rc;
}

/* Runs one line; prints the usage, or the error unless the command said it, so callers only
 * see the code. */
int shell_run_line(char *line)
{
	char *argv[ARGS_MAX];
	int argc = args_split(line, argv, ARGS_MAX);
	if (argc == -E_SYNTAX) {
		kprintf("error: unterminated quote\n");
		return argc;
	}
	if (argc < 0) {
		kprintf("error: more than %d words\n", ARGS_MAX);
		return argc;
	}
	if (argc == 0)
		return 0;
	const struct command *c = shell_find(argv[0]);
	if (!c) {
		console_mark(CON_SEV_ERROR);
		kprintf("unknown command '%s' (try help)\n", argv[0]);
		return -E_NOENT;
	}
	failure_said = false;
	uint64_t first = console_line();
	int rc = c->run(argc, argv);
	if (rc == -E_USAGE)
		kprintf("usage: %s\n", c->usage);   /* after the command's reason, if it gave one */
	else if (rc < 0 && !failure_said)
		kprintf("error: %s\n", err_str(rc));
	if (rc < 0)   /* however the command worded it, a failure is red on the screen */
		console_mark_since(first, CON_SEV_ERROR);
	failure_said = false;
	return rc;
}

static int script_line(char *line, int lineno)
{
	kprintf("script: %s\n", line);
	char copy[LE_LINE], expanded[LE_LINE];
	fmt_snprintf(copy, sizeof(copy), "%s", line);
	int rc = script_expand(line, expanded, sizeof(expanded));   /* ${serial:<disk>} etc. */
	if (rc == 0 && strcmp(expanded, copy))
		kprintf("script:   = %s\n", expanded);
	if (rc == 0)
		rc = shell_run_line(expanded);
	if (rc < 0) {
		console_mark(CON_SEV_ERROR);
		kprintf("script failed at line %d: %s: %s\n", lineno, copy, err_str(rc));
		log_event(LOG_ERR, "script failed at line %d", lineno);
		if (setting_on_error() == ON_ERROR_POWEROFF)
			power_off();
	}
	return rc;
}

/* Runs `text`, one command per piece split on `sep`; stops at the first failure. */
static void run_script(const char *text, char sep, const char *what)
{
	static char buf[64 * 1024 + 1];   /* the boot loader's limit for cowboot.cfg */
	fmt_snprintf(buf, sizeof(buf), "%s", text);
	kprintf("running boot script from %s\n", what);
	struct script sc;
	script_init(&sc, buf, sep);
	for (char *line; (line = script_next(&sc));)
		if (script_line(line, sc.lineno) < 0)
			return;
	kprintf("script finished\n");
}

void shell_run_boot_script(const char *load_options, const char *cfg)
{
	if (load_options && *load_options)
		run_script(load_options, ';', "load options");
	else if (cfg)
		run_script(cfg, '\n', "cowboot.cfg");
}

/* The line being typed at the prompt, while the shell waits for input. */
static struct lineedit *editing;
/* Events from background jobs that came while a line was half typed: shown when it is entered,
 * so that no event splits a line (people and scripts both read the console line by line). */
#define DEFERRED_MAX 16
static char deferred[DEFERRED_MAX][160];
static unsigned ndeferred, dropped;

void shell_print_event(const char *line)
{
	/* While a line is being typed, an event waits, also one that a poller logs on the shell's
	 * own task (pollers run in whichever task yields): it must not split the echoed line. */
	if (!editing) {
		kprintf("%s\n", line);
		return;
	}
	if (editing->len == 0) {
		/* At an empty prompt: the event on its own line, then the prompt again. */
		kprintf("\r\n%s\n" PROMPT, line);
		return;
	}
	if (ndeferred < DEFERRED_MAX)
		fmt_snprintf(deferred[ndeferred++], sizeof(deferred[0]), "%s", line);
	else
		dropped++;
}

static void print_deferred(void)
{
	for (unsigned i = 0; i < ndeferred; i++)
		kprintf("%s\n", deferred[i]);
	if (dropped)
		kprintf("(%u more events: see log)\n", dropped);
	ndeferred = dropped = 0;
}

void shell_loop(void)
{
	static struct lineedit le;
	le_init(&le);
	for (;;) {
		le_start(&le);
		/* The screen is whole before the prompt goes out on the serial line (which a script or
		 * a test at the other end takes as "done"); the prompt itself is drawn a frame later. */
		fbcon_flush();
		kprintf(PROMPT);
		enum le_result r = LE_MORE;
		editing = &le;
		while (r == LE_MORE) {
			int c = console_getc();
			if (c < 0) {
				task_yield();
				continue;
			}
			char echo[LE_LINE * 3];
			r = le_feed(&le, c, echo, sizeof(echo));
			console_puts(echo);
		}
		editing = NULL;
		print_deferred();
		if (r != LE_ENTER)
			continue;
		le_remember(&le);
		char line[LE_LINE];
		memcpy(line, le.buf, sizeof(line));
		console_interrupted();   /* forget a Ctrl-C typed before this command */
		shell_run_line(line);
	}
}
