/* The block layer: disk registry and names, request queueing up to each device's depth, the
 * read-only guard, per-request deadlines with driver recovery, and synchronous helpers. */
#include "blk.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/task.h"
#include "../kernel/time.h"

#include "../kernel/settings.h"
#include "../kernel/shell.h"

#define MAX_DISKS 128   /* disks and partitions: USB and network disks add to what a PC has */
static struct blk_dev *disks[MAX_DISKS];
static int ndisks;

/* The deadline of a request whose submitter and device name none. */
static uint64_t io_timeout_ms = 30000;
SETTING(io_timeout, "io-timeout", "default per-command deadline in ms", &io_timeout_ms, NULL,
	50, 3600000);

static uint32_t timeout_of(const struct blk_dev *d, const struct blk_req *r)
{
	return r->timeout_ms ? r->timeout_ms : d->timeout_ms ? d->timeout_ms : (uint32_t)io_timeout_ms;
}

int blk_register(struct blk_dev *d)
{
	if (ndisks == MAX_DISKS)
		return -E_NOSPC;
	if (!d->queue_depth)
		d->queue_depth = 1;
	d->instance = 1;
	disks[ndisks++] = d;
	log_event(LOG_INFO, "disk %s: %llu sectors of %u bytes, model '%s', serial '%s'%s", d->name,
		  (unsigned long long)d->sectors, d->lsize, d->model, d->serial,
		  d->flags & BLK_F_DEV_RO ? ", write-protected" : "");
	return 0;
}

int blk_count(void)
{
	return ndisks;
}

struct blk_dev *blk_get(int i)
{
	return i >= 0 && i < ndisks ? disks[i] : NULL;
}

struct blk_dev *blk_find(const char *spec)
{
	const char *serial = !strncmp(spec, "serial=", 7) ? spec + 7 : NULL;
	for (int i = 0; i < ndisks; i++) {
		struct blk_dev *d = disks[i];
		if ((serial && *serial && !strcmp(d->serial, serial)) || !strcmp(d->name, spec) ||
		    (!strcmp(spec, "boot") && (d->flags & BLK_F_BOOT)))
			return d;
	}
	kprintf("no disk '%s' (see disks)\n", spec);
	cmd_said(-E_NOENT);
	return NULL;
}

static void list_remove(struct blk_req **head, struct blk_req *r)
{
	for (struct blk_req **pp = head; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			r->next = NULL;
			return;
		}
}

static void list_append(struct blk_req **head, struct blk_req *r)
{
	r->next = NULL;
	while (*head)
		head = &(*head)->next;
	*head = r;
}

static void finish(struct blk_dev *d, struct blk_req *r, int status, uint64_t err_lba)
{
	if (r->dev != d) {   /* a partition's request, run on its disk: back to partition LBAs */
		r->lba -= r->dev->start_lba;
		if (err_lba != BLK_NO_LBA)
			err_lba -= r->dev->start_lba;
	}
	r->status = status;
	r->err_lba = err_lba;
	r->complete = true;
	uint64_t lat = time_now_us() - r->submit_us;
	d->ctr.completed++;
	d->ctr.lat_total_us += lat;
	if (lat > d->ctr.lat_max_us)
		d->ctr.lat_max_us = lat;
	if (status < 0)
		d->ctr.errors++;
	else if (r->op == BLK_READ)
		d->ctr.bytes_read += (uint64_t)r->count * d->lsize;
	else if (r->op == BLK_WRITE || r->op == BLK_WRITE_ZEROES)
		d->ctr.bytes_written += (uint64_t)r->count * d->lsize;
	if (r->done)
		r->done(r);
}

/* Starts waiting requests while the device has room. */
static void kick(struct blk_dev *d)
{
	while (d->waiting && d->ninflight < d->queue_depth) {
		struct blk_req *r = d->waiting;
		r->instance = d->instance;
		r->deadline_us = time_now_us() + (uint64_t)timeout_of(d, r) * 1000;
		int rc = d->ops->start(d, r);
		if (rc == -E_BUSY)
			return;
		d->waiting = r->next;
		if (rc < 0) {
			finish(d, r, rc, BLK_NO_LBA);
			continue;
		}
		list_append(&d->inflight, r);
		d->ninflight++;
	}
}

/* A split request's piece finished: the parent completes with the first error, at the LBA the
 * failing piece named, once every piece is done. */
static void child_done(struct blk_req *c)
{
	struct blk_req *p = c->parent;
	if (c->status < 0 && p->status == 0) {
		p->status = c->status;
		p->err_lba = c->err_lba;
	}
	if (--p->pending == 0) {
		kfree(p->next);   /* the children's array */
		p->next = NULL;
		p->complete = true;
		if (p->done)
			p->done(p);
	}
}

static bool no_data(uint8_t op)
{
	return op == BLK_DISCARD || op == BLK_WRITE_ZEROES;
}

/* The largest command of this kind the device takes. */
static uint32_t max_of(const struct blk_dev *d, uint8_t op)
{
	return no_data(op) && d->max_zero_sectors ? d->max_zero_sectors : d->max_sectors;
}

/* Larger than one command: split into pieces of the device's limit, all queued at once. */
static int submit_split(struct blk_dev *d, struct blk_req *r)
{
	uint32_t max = max_of(d, r->op);
	uint32_t n = (r->count + max - 1) / max;
	struct blk_req *kids = kzalloc(sizeof(*kids) * n);
	if (!kids)
		return -E_NOMEM;
	r->next = kids;   /* parked here until the last piece completes */
	r->pending = n;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t off = i * max;
		kids[i] = (struct blk_req){ .op = r->op, .flags = r->flags, .lba = r->lba + off,
					    .count = r->count - off < max ? r->count - off : max,
					    .buf = r->buf ? (uint8_t *)r->buf + (uint64_t)off * d->lsize : NULL,
					    .timeout_ms = r->timeout_ms, .done = child_done, .parent = r };
	}
	for (uint32_t i = 0; i < n; i++)
		blk_submit(d, &kids[i]);   /* errors arrive through child_done */
	return 0;
}

int blk_submit(struct blk_dev *d, struct blk_req *r)
{
	r->dev = d;
	r->complete = false;
	r->status = 0;
	r->err_lba = BLK_NO_LBA;
	r->submit_us = time_now_us();
	int rc = 0;
	uint32_t flags = d->flags | (d->parent ? d->parent->flags : 0);
	/* The guard that protects a source disk: checked before any driver sees the request. A
	 * partition is protected by its disk's flags as well as its own, and the other way round
	 * (blk_protect_tree). */
	if (r->op != BLK_READ && (flags & (BLK_F_RO | BLK_F_SOURCE | BLK_F_DEV_RO)))
		rc = -E_RDONLY;
	else if (flags & BLK_F_GONE)
		rc = -E_GONE;
	else if ((r->flags & BLK_REQ_FUA) && !(d->flags & BLK_F_FUA))
		rc = -E_UNSUPP;
	else if (r->op > BLK_WRITE_ZEROES || (r->op == BLK_DISCARD && !(d->flags & BLK_F_DISCARD)) ||
		 (r->op == BLK_WRITE_ZEROES && !(d->flags & BLK_F_ZEROES)))
		rc = -E_UNSUPP;   /* drivers only ever see the operations they offer */
	else if (r->op != BLK_FLUSH && (r->count == 0 || r->lba >= d->sectors ||
					r->count > d->sectors - r->lba))
		rc = -E_RANGE;
	else if (r->op != BLK_FLUSH && r->count > max_of(d, r->op)) {
		r->pending = 0;
		rc = submit_split(d, r);
		if (rc == 0)
			return 0;
	}
	if (rc == 0 && d->parent) {   /* run it on the whole disk */
		r->lba += d->start_lba;
		d = d->parent;
	}
	if (r->op == BLK_READ)
		d->ctr.reads++;
	else if (r->op == BLK_FLUSH)
		d->ctr.flushes++;
	else
		d->ctr.writes++;   /* discards and write-zeroes count as writes */
	if (rc < 0) {
		finish(r->dev, r, rc, BLK_NO_LBA);
		return rc;
	}
	if (r->op == BLK_FLUSH && !(d->flags & BLK_F_FLUSH)) {
		finish(d, r, 0, BLK_NO_LBA);   /* no volatile cache: every write is already durable */
		return 0;
	}
	list_append(&d->waiting, r);
	kick(d);
	return 0;
}

void blk_complete(struct blk_dev *d, struct blk_req *r, int status, uint64_t err_lba)
{
	if (r->instance != d->instance || r->complete)
		return;   /* a late answer for a request the layer already gave up on */
	list_remove(&d->inflight, r);
	d->ninflight--;
	finish(d, r, status, err_lba);
	kick(d);
}

static void fail_all(struct blk_dev *d, int status)
{
	struct blk_req *r;
	while ((r = d->inflight)) {
		d->inflight = r->next;
		finish(d, r, status, BLK_NO_LBA);
	}
	d->ninflight = 0;
	while ((r = d->waiting)) {
		d->waiting = r->next;
		finish(d, r, status, BLK_NO_LBA);
	}
}

void blk_protect_tree(struct blk_dev *d, uint32_t flag, bool on)
{
	struct blk_dev *top = blk_drive(d);
	for (int i = 0; i < ndisks; i++)
		if (disks[i] == top || disks[i]->parent == top)
			disks[i]->flags = on ? disks[i]->flags | flag : disks[i]->flags & ~flag;
}

void blk_set_gone(struct blk_dev *d)
{
	if (d->flags & BLK_F_GONE)
		return;
	d->flags |= BLK_F_GONE;
	d->instance++;
	log_event(LOG_WARN, "disk %s is gone", d->name);
	fail_all(d, -E_GONE);
}

void blk_set_returned(struct blk_dev *d)
{
	d->flags &= ~BLK_F_GONE;
	d->instance++;
	log_event(LOG_INFO, "disk %s is back (instance %llu)", d->name, (unsigned long long)d->instance);
}

int blk_reprobe(struct blk_dev *d)
{
	struct blk_dev *top = d->parent ? d->parent : d;
	if (!(top->flags & BLK_F_GONE))
		return 0;
	int rc = top->ops->recover(top, NULL);
	if (rc == 0)
		blk_set_returned(top);
	return rc;
}

/* The overdue request fails with -E_TIMEOUT; the others in flight are re-issued after the
 * driver's recovery, since nothing says they failed. */
static void handle_overdue(struct blk_dev *d, struct blk_req *late)
{
	d->ctr.timeouts++;
	log_event(LOG_WARN, "disk %s: request at LBA %llu timed out after %u ms, resetting", d->name,
		  (unsigned long long)late->lba, timeout_of(d, late));
	int rc = d->ops->recover(d, late);
	d->ctr.resets++;
	d->instance++;
	struct blk_req *again = NULL, *r;
	while ((r = d->inflight)) {
		d->inflight = r->next;
		if (r == late)
			finish(d, r, -E_TIMEOUT, BLK_NO_LBA);
		else
			list_append(&again, r);
	}
	d->ninflight = 0;
	if (rc < 0) {
		d->inflight = again;
		blk_set_gone(d);
		return;
	}
	while ((r = again)) {
		again = r->next;
		list_append(&d->waiting, r);
	}
	kick(d);
}

static void blk_poll_all(void)
{
	uint64_t now = time_now_us();
	for (int i = 0; i < ndisks; i++) {
		struct blk_dev *d = disks[i];
		if (d->parent || (d->flags & BLK_F_GONE))
			continue;
		if (d->ninflight)
			d->ops->poll(d);
		for (struct blk_req *r = d->inflight; r && !(d->flags & BLK_F_OVERLAY); r = r->next)
			if (now > r->deadline_us) {
				handle_overdue(d, r);
				break;
			}
	}
}
POLLER(blk, blk_poll_all);

static int wait_done(struct blk_req *r)
{
	while (!r->complete)
		task_yield();
	return r->status;
}

static int blk_rw(struct blk_dev *d, uint8_t op, uint64_t lba, uint32_t count, void *buf,
		  uint64_t *err_lba, uint32_t timeout_ms)
{
	struct blk_req r = { .op = op, .lba = lba, .count = count, .buf = buf, .timeout_ms = timeout_ms };
	int rc = blk_submit(d, &r);
	if (rc == 0)
		rc = wait_done(&r);
	if (rc < 0 && err_lba)
		*err_lba = r.err_lba;
	return rc;
}

int blk_read(struct blk_dev *d, uint64_t lba, uint32_t count, void *buf, uint64_t *err_lba)
{
	return blk_rw(d, BLK_READ, lba, count, buf, err_lba, 0);
}

int blk_read_timeout(struct blk_dev *d, uint64_t lba, uint32_t count, void *buf, uint64_t *err_lba,
		     uint32_t timeout_ms)
{
	return blk_rw(d, BLK_READ, lba, count, buf, err_lba, timeout_ms);
}

int blk_write(struct blk_dev *d, uint64_t lba, uint32_t count, const void *buf, uint64_t *err_lba)
{
	return blk_rw(d, BLK_WRITE, lba, count, (void *)buf, err_lba, 0);
}

int blk_flush(struct blk_dev *d)
{
	struct blk_req r = { .op = BLK_FLUSH };
	int rc = blk_submit(d, &r);
	return rc < 0 ? rc : wait_done(&r);
}

int blk_write_zeroes(struct blk_dev *d, uint64_t lba, uint32_t count, uint64_t *err_lba)
{
	return blk_rw(d, BLK_WRITE_ZEROES, lba, count, NULL, err_lba, 0);
}

int blk_discard(struct blk_dev *d, uint64_t lba, uint32_t count)
{
	return blk_rw(d, BLK_DISCARD, lba, count, NULL, NULL, 0);
}

void blk_format_size(char *out, int outlen, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	int u = 0;
	uint64_t whole = bytes, frac = 0;
	while (whole >= 1024 && u < 5) {
		frac = (whole % 1024) * 10 / 1024;
		whole /= 1024;
		u++;
	}
	if (u)
		fmt_snprintf(out, (size_t)outlen, "%llu.%llu %s", (unsigned long long)whole,
			     (unsigned long long)frac, units[u]);
	else
		fmt_snprintf(out, (size_t)outlen, "%llu B", (unsigned long long)whole);
}
