/* Each open overlay is also a disk of the block layer, named like it (ov0..ov7): reads and writes
 * go through the cow engine (reads store what they take from the source, as finished), so every
 * disk command works on the rescued disk while the source stays read-only. */
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/task.h"
#include "../kernel/time.h"
#include "overlay.h"
#include "../lib/errors.h"
#include "../lib/port.h"

#define OV_DISK_DEPTH 4              /* requests taken at once; the worker runs them in order */
#define OV_DISK_MAX_BYTES (1u << 20) /* the largest request the worker takes (the layer splits) */
#define OV_DISK_LOCK_TIMEOUT_MS 2000 /* a job holds its overlay for its whole run: give up then */

/* The engine waits for its disks by yielding, which pollers and the layer's start() cannot do:
 * a task of its own per overlay disk runs the requests, and the poller completes them. */
struct ov_disk {
	struct blk_dev blk;
	struct overlay *o;
	struct blk_req *queue[OV_DISK_DEPTH];   /* taken, not yet run (in order) */
	struct blk_req *ended[OV_DISK_DEPTH];   /* run: completed by the next poll */
	int rc[OV_DISK_DEPTH];
	uint64_t err_lba[OV_DISK_DEPTH];
	uint32_t nqueue, nended;
	bool registered, attached, running, warned;
	char name[8];
};
static struct ov_disk disks[MAX_OV];

static int ovd_start(struct blk_dev *d, struct blk_req *r)
{
	struct ov_disk *v = d->drv;
	if (!v->attached)
		return -E_GONE;
	if (v->nqueue == OV_DISK_DEPTH)
		return -E_BUSY;
	v->queue[v->nqueue++] = r;
	return 0;
}

static void ovd_poll(struct blk_dev *d)
{
	struct ov_disk *v = d->drv;
	uint32_t n = v->nended;
	v->nended = 0;   /* blk_complete may start the next request, which may end at once */
	for (uint32_t i = 0; i < n; i++)
		blk_complete(d, v->ended[i], v->rc[i], v->err_lba[i]);
}

static int ovd_recover(struct blk_dev *d, struct blk_req *overdue)
{
	(void)overdue;   /* no deadline of its own (BLK_F_OVERLAY): only a re-probe comes here */
	struct ov_disk *v = d->drv;
	return v->attached ? 0 : -E_GONE;
}

static void ovd_info(struct blk_dev *d)
{
	struct ov_disk *v = d->drv;
	if (!v->attached) {
		kprintf("overlay %s is closed\n", d->name);
		return;
	}
	struct cow_totals t;
	cow_map_totals(cow_get_map(v->o->cow), &t);
	kprintf("overlay: source %s (read-only), cow %s; written through it %llu bytes\n", v->o->src.blk->name,
		v->o->dst.blk->name, (unsigned long long)(t.written * d->lsize));
}

static const struct blk_driver_ops ovd_ops = {
	.start = ovd_start, .poll = ovd_poll, .recover = ovd_recover, .info = ovd_info,
};

static bool locked(void *o)
{
	return overlay_try_lock(o) == 0;
}

/* One request through the engine; err_lba: the first bad sector of a failed read. */
static int run_one(struct ov_disk *v, struct blk_req *r, uint64_t *err_lba)
{
	struct overlay *o = v->o;
	uint64_t off = r->lba * v->blk.lsize, len = (uint64_t)r->count * v->blk.lsize, bad = off;
	if (wait_yielding(locked, o, OV_DISK_LOCK_TIMEOUT_MS) < 0)
		return -E_BUSY;   /* its rescue or clone job is running: stop it first */
	int rc;
	if (r->op == BLK_READ) {
		rc = cow_ov_read_rescuing(o->cow, off, len, r->buf, &bad);
		if ((rc == -E_COWIO || rc == -E_NOSPC) && !v->warned) {
			/* buf holds the right data: only its copy into the cow failed */
			log_event(LOG_WARN, "%s: copy-on-read into cow %s failed: %s (reads go on, uncopied)",
				  v->blk.name, o->dst.blk->name, err_str(rc));
			v->warned = true;
		}
		if (rc == -E_COWIO || rc == -E_NOSPC)
			rc = 0;
		if (rc < 0)
			*err_lba = bad / v->blk.lsize;
	} else if (r->op == BLK_WRITE) {
		rc = cow_ov_write(o->cow, off, len, r->buf);
	} else {
		rc = cow_sync(o->cow);   /* a flush is a commit: written and copied ranges durable */
	}
	overlay_unlock(o);
	return rc;
}

static void ovd_worker(void *arg)
{
	struct ov_disk *v = arg;
	while (v->attached) {
		if (!v->nqueue || v->nended == OV_DISK_DEPTH) {
			task_yield();
			continue;
		}
		struct blk_req *r = v->queue[0];
		uint64_t err_lba = BLK_NO_LBA;
		int rc = run_one(v, r, &err_lba);
		memmove(v->queue, v->queue + 1, sizeof(v->queue[0]) * --v->nqueue);
		v->ended[v->nended] = r;
		v->rc[v->nended] = rc;
		v->err_lba[v->nended++] = err_lba;
	}
	v->running = false;
}

int ov_disk_attach(struct overlay *o)
{
	int i = overlay_index(o);
	struct ov_disk *v = &disks[i];
	struct blk_dev *src = o->src.blk, *cow = o->dst.blk;
	v->o = o;
	v->nqueue = v->nended = 0;
	v->warned = false;
	struct blk_dev *d = &v->blk;
	fmt_snprintf(d->name, sizeof(d->name), "ov%d", i);
	d->transport = "overlay";
	d->sectors = src->sectors;
	d->lsize = src->lsize;
	d->psize = src->psize;
	fmt_snprintf(d->model, sizeof(d->model), "%s over %s", cow->name, src->name);
	d->serial[0] = d->firmware[0] = '\0';
	d->wwn_len = 0;
	d->flags = BLK_F_OVERLAY | BLK_F_FLUSH | (d->flags & BLK_F_GONE);
	d->max_sectors = OV_DISK_MAX_BYTES / d->lsize;
	d->queue_depth = OV_DISK_DEPTH;
	d->ops = &ovd_ops;
	d->drv = v;
	bool first = !v->registered;
	if (first) {
		int rc = blk_register(d);   /* names are never reused: a reopened ovN is this disk again */
		if (rc < 0) {
			kprintf("%s: no room for the overlay's disk: %s\n", d->name, err_str(rc));
			return rc;
		}
		v->registered = true;
	}
	v->attached = true;
	v->running = true;
	if (!task_spawn(d->name, ovd_worker, v)) {
		v->attached = v->running = false;
		blk_set_gone(d);
		kprintf("%s: no task for the overlay's disk (it stays gone)\n", d->name);
		return -E_NOMEM;
	}
	if (!first)
		blk_set_returned(d);   /* no request can come between the registration and here */
	return 0;
}

int ov_disk_detach(struct overlay *o)
{
	struct ov_disk *v = &disks[overlay_index(o)];
	if (!v->registered || !v->running)
		return 0;
	if (v->blk.flags & (BLK_F_SOURCE | BLK_F_COW | BLK_F_TARGET)) {
		kprintf("%s: its disk is the source, cow or clone target of another overlay: close that first\n",
			v->blk.name);
		return -E_BUSY;
	}
	/* What was taken is run first (the engine owns those buffers until then), then the worker
	 * ends and whatever arrives later fails as for a disk that is gone. */
	while (v->nqueue)
		task_yield();
	v->attached = false;
	while (v->running)
		task_yield();
	ovd_poll(&v->blk);
	blk_set_gone(&v->blk);
	return 0;
}
