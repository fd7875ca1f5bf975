/* The command shell: every command registers itself with COMMAND(); `help` lists the table. */
#ifndef KERNEL_SHELL_H
#define KERNEL_SHELL_H

#include <stdbool.h>
#include <stdint.h>
#include "table.h"

struct command {
	const char *name;     /* first word; for sub-commands ("cow format") the first word only */
	const char *usage;    /* "read <disk> <lba> [count]" : printed on -E_USAGE */
	const char *summary;  /* one line for `help` */
	const char *help;     /* longer text for `help <cmd>` (options), may be NULL */
	/* Returns 0, or a negative error code: the shell prints "error: <msg>" (and the usage line
	 * for -E_USAGE). argv[0] is the command name. Must change nothing on bad arguments. */
	int (*run)(int argc, char **argv);
};

/* COMMAND(read, "read <disk> <lba> [count]", "hexdump of sectors", NULL, cmd_read); */
#define COMMAND(id, usage_, summary_, help_, fn) \
	static const struct command __cmd_##id TABLE_ENTRY(cmd, id) = \
		{ #id, usage_, summary_, help_, fn }

const struct command *shell_find(const char *name);
/* A command that has printed why it failed returns cmd_said(rc): the shell then adds no
 * "error: ..." line of its own, so one failure is one line (a usage error still shows the
 * usage after the reason). */
int cmd_said(int rc);
/* Runs one command line; returns the command's result. Used by scripts and the prompt. */
int shell_run_line(char *line);

/* Entry points for kernel_main (app/main.c): run the boot script (load options, `;`-separated,
 * else cowboot.cfg lines), then the interactive prompt forever. */
void shell_run_boot_script(const char *load_options, const char *cfg);
void shell_loop(void) __attribute__((noreturn));
/* Prints an event line. From a background task while the prompt waits for input: at an empty
 * prompt on a line of its own with the prompt again; while a line is half typed, after it is
 * entered. */
void shell_print_event(const char *line);

#endif
