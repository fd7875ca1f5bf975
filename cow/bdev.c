/* Synchronous calls and batches over the asynchronous block-device interface of cow.h: what
 * the cow engine, the rescue and the tools use to talk to devices. */
#include "cow.h"
#include "../lib/errors.h"

static void io_start(const struct cow_bdev *d, struct cow_io *io, uint8_t op, uint64_t off, uint32_t len,
		     const void *buf)
{
	io->op = op;
	io->off = off;
	io->len = len;
	io->buf = (void *)buf;   /* a write's buffer is only read */
	io->status = 0;
	io->bad_off = off;
	d->submit(d->ctx, io);
}

static int one(const struct cow_bdev *d, uint8_t op, uint64_t off, uint32_t len, const void *buf,
	       uint64_t *bad_off)
{
	struct cow_io io;
	io_start(d, &io, op, off, len, buf);
	int rc = d->wait(d->ctx, &io);
	if (rc < 0 && bad_off)
		*bad_off = io.bad_off;
	return rc;
}

int cow_bdev_read(const struct cow_bdev *d, uint64_t off, uint32_t len, void *buf, uint64_t *bad_off)
{
	return one(d, COW_IO_READ, off, len, buf, bad_off);
}

int cow_bdev_write(const struct cow_bdev *d, uint64_t off, uint32_t len, const void *buf)
{
	return one(d, COW_IO_WRITE, off, len, buf, NULL);
}

int cow_bdev_flush(const struct cow_bdev *d)
{
	return one(d, COW_IO_FLUSH, 0, 0, NULL, NULL);
}

void cow_batch_init(struct cow_batch *b)
{
	b->n = 0;
	b->status = 0;
	b->bad_off = 0;
	b->failed = NULL;
}

/* Waits for all in flight, oldest first, keeping the first failure. */
static void drain(struct cow_batch *b)
{
	for (uint32_t i = 0; i < b->n; i++) {
		int rc = b->dev[i]->wait(b->dev[i]->ctx, &b->io[i]);
		if (rc < 0 && b->status == 0) {
			b->status = rc;
			b->bad_off = b->io[i].bad_off;
			b->failed = b->dev[i];
		}
	}
	b->n = 0;
}

void cow_batch_add(struct cow_batch *b, const struct cow_bdev *d, uint8_t op, uint64_t off, uint32_t len,
		   const void *buf)
{
	if (b->n == COW_BATCH)
		drain(b);
	if (b->status < 0)
		return;   /* the whole operation has failed: do not start more of it */
	b->dev[b->n] = d;
	io_start(d, &b->io[b->n++], op, off, len, buf);
}

int cow_batch_wait(struct cow_batch *b, uint64_t *bad_off)
{
	drain(b);
	if (b->status < 0 && bad_off)
		*bad_off = b->bad_off;
	return b->status;
}
