/* Test block devices for cow/: RAM disks with a volatile write cache that a "power cut" can
 * lose or reorder, injected media errors, and a host cow_env. */
#ifndef TESTS_FAKEDEV_H
#define TESTS_FAKEDEV_H
#include "../../cow/cow.h"

#define FAKEDEV_QUEUE 32
struct fakedev {
	struct cow_bdev bdev;
	uint8_t *durable;          /* what survives a power cut */
	uint8_t *view;             /* what reads see (durable + cached writes) */
	struct cached { uint64_t off; uint32_t len; uint8_t *data; } *cache;
	size_t ncache, capcache;
	uint64_t writes;           /* write calls so far */
	uint64_t cut_after;        /* 0: never; else the device dies after this many writes */
	int dead;
	uint64_t bad_from, bad_to; /* reads touching [bad_from, bad_to) fail with -E_MEDIUM */
	uint64_t wbad_from;        /* writes reaching past it fail with -E_MEDIUM (0: never) */
	struct cow_io *queue[FAKEDEV_QUEUE];   /* submitted, not yet ended */
	size_t nqueue;
	uint32_t rng;              /* the order requests end in */
	uint64_t submitted, max_inflight;
	uint64_t max_others;       /* most requests in flight on other fakedevs at a submit here */
	uint64_t abandoned;        /* submitted and never waited for (a bug in the caller) */
};

void fakedev_init(struct fakedev *d, uint64_t size, uint32_t lsize, const char *model, const char *serial);
void fakedev_free(struct fakedev *d);
/* The state after a power cut: durable data plus a pseudo-random subset of the unflushed writes
 * (seeded), applied in a shuffled order. Leaves the device alive and clean. */
void fakedev_power_cut(struct fakedev *d, uint32_t seed);
/* The device holding image (its whole size) durably, as after a clean shutdown: nothing cached,
 * alive. For tests that start again from one saved state many times. */
void fakedev_restore(struct fakedev *d, const uint8_t *image);
/* Forgets the writes not yet flushed, freeing them: reads still see them, but a flush or a power
 * cut no longer applies them. For fuzzers that lay a fresh view over the device on every run. */
void fakedev_drop_cache(struct fakedev *d);
/* A copy of the first len bytes of what the device holds durably (malloc'd: the caller frees). */
uint8_t *fakedev_durable_copy(const struct fakedev *d, uint64_t len);
/* A source of src_bytes and a cow device of cow_bytes (512-byte sectors), the cow formatted for
 * the source with 4 KiB units: the cow fuzzers' starting point. 0 or cow_format's error. */
int fakedev_formatted_pair(struct fakedev *src, uint64_t src_bytes, struct fakedev *cow, uint64_t cow_bytes);
extern const struct cow_env test_env;
#endif
