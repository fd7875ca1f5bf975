/* ${...} variables of boot-script lines: the expander (kernel/script_vars.c) and the table the
 * variables register in, each by the file that knows its value (SCRIPT_VAR). */
#ifndef KERNEL_SCRIPT_VARS_H
#define KERNEL_SCRIPT_VARS_H
#include <stddef.h>
#include "table.h"

struct script_var {
	const char *name;   /* "mac": ${mac}; with arg, "serial": ${serial:<arg>} */
	const char *arg;    /* NULL: takes no argument; else what it names ("disk"), for messages */
	/* Writes the value (NUL-terminated, at most n bytes) into out; arg is the text after the
	 * colon or NULL. Prints why and returns a negative code when there is none. */
	int (*value)(const char *arg, char *out, size_t n);
};

/* SCRIPT_VAR(mac, "mac", NULL, mac_value); SCRIPT_VAR(serial, "serial", "disk", serial_value); */
#define SCRIPT_VAR(id, name_, arg_, fn) \
	static const struct script_var __svar_##id TABLE_ENTRY(svar, id) = { name_, arg_, fn }

/* Copies `in` to `out` with every ${name} replaced; prints why and returns a negative code for
 * an unknown variable, one without a value, or a line too long. */
int script_expand(const char *in, char *out, size_t outlen);
#endif
