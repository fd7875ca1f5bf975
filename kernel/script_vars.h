/* ${...} variables of boot-script lines (kernel/script_vars.c). */
#ifndef KERNEL_SCRIPT_VARS_H
#define KERNEL_SCRIPT_VARS_H
#include <stddef.h>
/* Copies `in` to `out` with every ${name} replaced; prints why and returns a negative code for
 * an unknown variable, a disk that is not there or a line too long. */
int script_expand(const char *in, char *out, size_t outlen);
#endif
