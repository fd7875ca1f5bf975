/* The host tools' command lines: getopt_long with one way of naming a bad option, and numbers,
 * sizes and hex bytes through lib/args.h, in the console's syntax (decimal or 0x, never octal;
 * k/M/G/T, KiB..TiB, kB..TB). */
#ifndef TOOLS_LIB_CLI_H
#define TOOLS_LIB_CLI_H
#include <getopt.h>
#include <stdint.h>

/* getopt_long (options anywhere, `--` ends them) that says what is wrong itself: on an unknown
 * option or one missing its value it prints "<prog>: unknown option '--x'" or "<prog>: --x
 * needs a value" on stderr and returns '?'. shortopts as getopt's; a leading '+' stops at the
 * first word that is no option (the words after it may begin with '-'). */
int cli_getopt(const char *prog, int argc, char **argv, const char *shortopts, const struct option *longopts);
/* The command line of a tool whose only option is --help (-h): -1 when argv[optind..argc) holds
 * min to max operands; else the exit status after printing usage: 0 for --help (on stdout), 2
 * for a bad option or a wrong number of operands (on stderr). */
int cli_operands(const char *prog, int argc, char **argv, const char *usage, int min, int max);
/* An option's value as a number or a size within [min, max] (max 0: no bound), or bytes in hex
 * (1 to max). 0, or -1 after printing "<prog>: <opt> <value>: <what would do>". */
int cli_u64(const char *prog, const char *opt, const char *v, uint64_t min, uint64_t max, uint64_t *out);
int cli_size(const char *prog, const char *opt, const char *v, uint64_t min, uint64_t max, uint64_t *out);
int cli_hex(const char *prog, const char *opt, const char *v, uint8_t *out, uint32_t max, uint32_t *len);
#endif
