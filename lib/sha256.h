/* SHA-256, streaming. */
#ifndef COW_SHA256_H
#define COW_SHA256_H
#include "port.h"
struct sha256 { uint32_t h[8]; uint64_t len; uint8_t buf[64]; size_t fill; };
void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[32]);
#endif
