/* RAM block devices with a volatile cache for the cow engine's crash tests. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fakedev.h"
#include "../../lib/errors.h"

/* Requests end inside wait, in a pseudo-random order among those in flight: the engine must
 * neither touch a buffer before its request has ended nor count on the order they end in. */
static int fd_read(struct fakedev *d, struct cow_io *io)
{
	uint64_t off = io->off, len = io->len;
	if (off + len > d->bdev.size)
		return -E_RANGE;
	if (d->bad_to > d->bad_from && off < d->bad_to && off + len > d->bad_from) {
		io->bad_off = off > d->bad_from ? off : d->bad_from;
		return -E_MEDIUM;
	}
	memcpy(io->buf, d->view + off, len);
	return 0;
}

static int fd_write(struct fakedev *d, const struct cow_io *io)
{
	if (d->dead)
		return -E_GONE;
	if (io->off + io->len > d->bdev.size || io->off % d->bdev.lsize || io->len % d->bdev.lsize)
		return -E_RANGE;
	if (d->wbad_from && io->off + io->len > d->wbad_from)
		return -E_MEDIUM;
	if (d->ncache == d->capcache) {
		d->capcache = d->capcache ? d->capcache * 2 : 64;
		d->cache = realloc(d->cache, d->capcache * sizeof(*d->cache));
	}
	struct cached *c = &d->cache[d->ncache++];
	c->off = io->off;
	c->len = io->len;
	c->data = malloc(io->len);
	memcpy(c->data, io->buf, io->len);
	memcpy(d->view + io->off, io->buf, io->len);
	if (d->cut_after && ++d->writes >= d->cut_after)
		d->dead = 1;   /* the power goes right after this write reached the cache */
	return 0;
}

/* A flush makes durable what is in the cache when it ends: writes still in flight are not. */
static int fd_flush(struct fakedev *d)
{
	if (d->dead)
		return -E_GONE;
	for (size_t i = 0; i < d->ncache; i++) {
		memcpy(d->durable + d->cache[i].off, d->cache[i].data, d->cache[i].len);
		free(d->cache[i].data);
	}
	d->ncache = 0;
	return 0;
}

static size_t inflight_all;   /* on every fakedev */

static void end_request(struct fakedev *d, size_t i)
{
	struct cow_io *io = d->queue[i];
	d->queue[i] = d->queue[--d->nqueue];
	inflight_all--;
	io->status = io->op == COW_IO_READ ? fd_read(d, io) : io->op == COW_IO_WRITE ? fd_write(d, io) : fd_flush(d);
}

static void fd_submit(void *ctx, struct cow_io *io)
{
	struct fakedev *d = ctx;
	if (d->nqueue == FAKEDEV_QUEUE)
		end_request(d, 0);
	if (inflight_all - d->nqueue > d->max_others)
		d->max_others = inflight_all - d->nqueue;
	d->queue[d->nqueue++] = io;
	inflight_all++;
	if (d->nqueue > d->max_inflight)
		d->max_inflight = d->nqueue;
	d->submitted++;
}

static int fd_wait(void *ctx, struct cow_io *io)
{
	struct fakedev *d = ctx;
	for (;;) {
		size_t i = 0;
		while (i < d->nqueue && d->queue[i] != io)
			i++;
		if (i == d->nqueue)
			return io->status;   /* it has ended */
		d->rng = d->rng * 1103515245u + 12345u;
		end_request(d, (d->rng >> 16) % d->nqueue);
	}
}

void fakedev_init(struct fakedev *d, uint64_t size, uint32_t lsize, const char *model, const char *serial)
{
	memset(d, 0, sizeof(*d));
	d->durable = calloc(1, size);
	d->view = calloc(1, size);
	d->bdev = (struct cow_bdev){ .ctx = d, .size = size, .lsize = lsize, .psize = lsize,
				     .submit = fd_submit, .wait = fd_wait };
	strncpy(d->bdev.model, model, sizeof(d->bdev.model) - 1);
	strncpy(d->bdev.serial, serial, sizeof(d->bdev.serial) - 1);
}

void fakedev_free(struct fakedev *d)
{
	inflight_all -= d->nqueue;
	fakedev_drop_cache(d);
	free(d->cache);
	free(d->durable);
	free(d->view);
}

void fakedev_power_cut(struct fakedev *d, uint32_t seed)
{
	d->abandoned += d->nqueue;   /* requests never waited for: the engine's bug, counted */
	inflight_all -= d->nqueue;
	d->nqueue = 0;
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

void fakedev_drop_cache(struct fakedev *d)
{
	for (size_t i = 0; i < d->ncache; i++)
		free(d->cache[i].data);
	d->ncache = 0;
}

void fakedev_restore(struct fakedev *d, const uint8_t *image)
{
	memcpy(d->durable, image, d->bdev.size);
	memcpy(d->view, image, d->bdev.size);
	fakedev_drop_cache(d);
	d->dead = 0;
}

uint8_t *fakedev_durable_copy(const struct fakedev *d, uint64_t len)
{
	uint8_t *p = malloc(len);
	if (p)
		memcpy(p, d->durable, len);
	return p;
}

int fakedev_formatted_pair(struct fakedev *src, uint64_t src_bytes, struct fakedev *cow, uint64_t cow_bytes)
{
	char why[200];
	fakedev_init(src, src_bytes, 512, "D", "S");
	fakedev_init(cow, cow_bytes, 512, "C", "C");
	return cow_format(&test_env, &cow->bdev, &src->bdev, 4096, why, sizeof(why));
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
