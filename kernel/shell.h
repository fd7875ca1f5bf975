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
/* Runs one command line; returns the command's result. Used by scripts and the prompt. */
int shell_run_line(char *line);

/* Runtime settings (`set key=value`). Each file registers its own with SETTING(). */
struct setting {
	const char *key;
	const char *help;
	uint64_t *value;      /* numeric settings */
	const char *const *choices; /* NULL-terminated names for enum settings (value is the index) */
	uint64_t min, max;
	/* Settings whose text is neither a number nor a choice (an address): parse checks the
	 * text (printing why it is wrong), format shows the value; changed runs after it is set. */
	int (*parse)(const char *text, uint64_t *v);
	void (*format)(uint64_t v, char *out, int outlen);
	void (*changed)(void);
};
#define SETTING(id, key_, help_, ptr, choices_, min_, max_) \
	static const struct setting __set_##id TABLE_ENTRY(set, id) = \
		{ key_, help_, ptr, choices_, min_, max_, NULL, NULL, NULL }
#define SETTING_FN(id, key_, help_, ptr, parse_, format_, changed_) \
	static const struct setting __set_##id TABLE_ENTRY(set, id) = \
		{ key_, help_, ptr, NULL, 0, 0, parse_, format_, changed_ }

#endif

/* Entry points for kernel_main (kernel/main.c): run the boot script (load options, `;`-separated,
 * else cowboot.cfg lines), then the interactive prompt forever. */
void shell_run_boot_script(const char *load_options, const char *cfg);
void shell_loop(void) __attribute__((noreturn));
/* Prints an event line. From a background task while the prompt waits for input: at an empty
 * prompt on a line of its own with the prompt again; while a line is half typed, after it is
 * entered. */
void shell_print_event(const char *line);
