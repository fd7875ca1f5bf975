/* Command-line parsing shared by the shell and host tests: words, numbers, sizes, key=value. */
#ifndef KERNEL_LIB_ARGS_H
#define KERNEL_LIB_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#define ARGS_MAX 32

/* Splits `line` in place into words; "double quotes" group words. Returns argc, or -E_SYNTAX
 * for an unterminated quote, -E_RANGE for more than `max` words. */
int args_split(char *line, char **argv, int max);
/* A whole number: decimal or 0x hex (010 is ten). 0 or -E_INVAL. The one number parser of
 * the console and the host tools. */
int args_u64(const char *s, uint64_t *out);
/* A byte size: a number with an optional suffix k/K/KiB (1024), M/MiB, G/GiB, T/TiB,
 * or kB/KB/MB/GB/TB (powers of 1000). 0 or -E_INVAL (also on overflow). */
int args_size(const char *s, uint64_t *out);
/* The same, also taking `s` (sectors of `sector` bytes) when sector is not 0. */
int args_size_in(const char *s, uint32_t sector, uint64_t *out);
/* Bytes written as hex digits, two a byte, `0x` optional ("deadbeef", "0x5a"): 1 to max bytes
 * into out, their count in *len. 0 or -E_INVAL. The wipe pattern and cowtool's --fill. */
int args_hex(const char *s, uint8_t *out, uint32_t max, uint32_t *len);
/* When arg is "key=value", points *val at value and returns true. */
bool args_kv(const char *arg, const char *key, const char **val);

#endif
