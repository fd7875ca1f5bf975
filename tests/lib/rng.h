/* The seeded xorshift64 generator of the host tests and benchmarks: the same sequence on every
 * run, its state the caller's (a test saves and restores it to replay a sequence). */
#ifndef TESTS_RNG_H
#define TESTS_RNG_H
#include <stdint.h>

static inline uint64_t xorshift64(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}
#endif
