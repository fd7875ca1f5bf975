/* RAM block devices with a volatile cache for the cow engine's crash tests. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fakedev.h"
#include "../../cow/errors.h"

static int fd_read(void *ctx, uint64_t off, uint32_t len, void *buf, uint64_t *bad)
{
	struct fakedev *d = ctx;
	if (off + len > d->bdev.size)
		return -E_RANGE;
	if (d->bad_to > d->bad_from && off < d->bad_to && off + len > d->bad_from) {
		if (bad)
			*bad = off > d->bad_from ? off : d->bad_from;
		return -E_MEDIUM;
	}
	memcpy(buf, d->view + off, len);
	return 0;
}

static int fd_write(void *ctx, uint64_t off, uint32_t len, const void *buf)
{
	struct fakedev *d = ctx;
	if (d->dead)
		return -E_GONE;
	if (off + len > d->bdev.size || off % d->bdev.lsize || len % d->bdev.lsize)
		return -E_RANGE;
	if (d->ncache == d->capcache) {
		d->capcache = d->capcache ? d->capcache * 2 : 64;
		d->cache = realloc(d->cache, d->capcache * sizeof(*d->cache));
	}
	struct cached *c = &d->cache[d->ncache++];
	c->off = off;
	c->len = len;
	c->data = malloc(len);
	memcpy(c->data, buf, len);
	memcpy(d->view + off, buf, len);
	if (d->cut_after && ++d->writes >= d->cut_after)
		d->dead = 1;   /* the power goes right after this write reached the cache */
	return 0;
}

static int fd_flush(void *ctx)
{
	struct fakedev *d = ctx;
	if (d->dead)
		return -E_GONE;
	for (size_t i = 0; i < d->ncache; i++) {
		memcpy(d->durable + d->cache[i].off, d->cache[i].data, d->cache[i].len);
		free(d->cache[i].data);
	}
	d->ncache = 0;
	return 0;
}

void fakedev_init(struct fakedev *d, uint64_t size, uint32_t lsize, const char *model, const char *serial)
{
	memset(d, 0, sizeof(*d));
	d->durable = calloc(1, size);
	d->view = calloc(1, size);
	d->bdev = (struct cow_bdev){ .ctx = d, .size = size, .lsize = lsize, .psize = lsize,
				     .read = fd_read, .write = fd_write, .flush = fd_flush };
	strncpy(d->bdev.model, model, sizeof(d->bdev.model) - 1);
	strncpy(d->bdev.serial, serial, sizeof(d->bdev.serial) - 1);
}

void fakedev_free(struct fakedev *d)
{
	for (size_t i = 0; i < d->ncache; i++)
		free(d->cache[i].data);
	free(d->cache);
	free(d->durable);
	free(d->view);
}

void fakedev_power_cut(struct fakedev *d, uint32_t seed)
{
	srand(seed);
	/* Shuffle, then keep each unflushed write with probability 1/2 — sector by sector, since a
	 * disk writes sectors atomically but not whole requests. */
	for (size_t i = d->ncache; i > 1; i--) {
		size_t j = (size_t)rand() % i;
		struct cached t = d->cache[i - 1];
		d->cache[i - 1] = d->cache[j];
		d->cache[j] = t;
	}
	for (size_t i = 0; i < d->ncache; i++) {
		for (uint32_t s = 0; s < d->cache[i].len; s += d->bdev.lsize)
			if (rand() & 1)
				memcpy(d->durable + d->cache[i].off + s, d->cache[i].data + s, d->bdev.lsize);
		free(d->cache[i].data);
	}
	d->ncache = 0;
	memcpy(d->view, d->durable, d->bdev.size);
	d->dead = 0;
	d->cut_after = 0;
	d->writes = 0;
}

static void *env_alloc(size_t n) { return malloc(n ? n : 1); }
static void env_free(void *p) { free(p); }
static uint64_t env_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}
static void env_random(void *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((uint8_t *)buf)[i] = (uint8_t)rand();
}
const struct cow_env test_env = { env_alloc, env_free, env_now, env_random };
