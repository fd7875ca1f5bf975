/* NVMe driver: admin queue, Identify, one polled I/O queue pair shared by the namespaces, PRP
 * lists for large transfers, status decoding with the failing LBA from the error log, and
 * recovery by Abort then controller reset with the identity re-checked. Command ids carry a
 * generation so stale completions are dropped. */
#include "blk.h"
#include "../lib/nvme_id.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/pci.h"
#include "../kernel/power.h"
#include "../kernel/time.h"

#define REG_CAP  0x00
#define REG_CC   0x14
#define REG_CSTS 0x1c
#define REG_AQA  0x24
#define REG_ASQ  0x28
#define REG_ACQ  0x30
#define CSTS_RDY 1u
#define CSTS_CFS 2u
#define CSTS_SHST_MASK (3u << 2)
#define CSTS_SHST_DONE (2u << 2)
#define CC_VALUE 0x00460001u     /* EN, 64-byte SQ entries, 16-byte CQ entries, 4 KiB pages */
#define CC_SHN_NORMAL (1u << 14)

#define AQ_SIZE 32
#define IOQ_SIZE 64
#define SLOTS (IOQ_SIZE - 1)
#define MAX_BYTES (1u << 20)     /* one PRP list page covers it */
#define MAX_NS 8
#define MAX_CTRL 8

/* Deadlines of admin commands and of the Abort ladder. CSTS.RDY waits take the controller's
 * own CAP.TO and shutdown its RTD3 entry latency (both read at probe). */
#define IDENTIFY_TIMEOUT_MS    2000   /* Identify, queue creation */
#define LOG_TIMEOUT_MS          500   /* the error log read after a media error */
#define HEALTH_TIMEOUT_MS      1000   /* the SMART / health log (info) */
#define ABORT_TIMEOUT_MS        500   /* the Abort command, then the aborted command's completion */
#define DRAIN_TIMEOUT_MS       1000   /* the namespace's other commands after an Abort */

enum { OP_FLUSH = 0x00, OP_WRITE = 0x01, OP_READ = 0x02 };
enum { ADM_DEL_SQ = 0x00, ADM_CREATE_SQ = 0x01, ADM_LOG = 0x02, ADM_CREATE_CQ = 0x05,
       ADM_IDENTIFY = 0x06, ADM_ABORT = 0x08 };

struct sqe { uint32_t cdw0, nsid, rsvd[2]; uint64_t mptr, prp1, prp2; uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15; };
struct cqe { uint32_t result, rsvd; uint16_t sq_head, sq_id, cid, status; };

struct queue {
	struct sqe *sq;
	volatile struct cqe *cq;
	uint16_t size, tail, head;
	uint8_t phase;
	volatile uint32_t *sq_db, *cq_db;
};

struct nvme_ns;

struct nvme_ctrl {
	struct pci_dev *pci;
	volatile uint8_t *regs;
	uint64_t cap;
	uint32_t timeout_ms;     /* CAP.TO */
	uint32_t shutdown_ms;    /* RTD3 entry latency, at least 5 s */
	uint16_t ioq_entries;    /* IOQ_SIZE, or fewer when CAP.MQES says so */
	struct queue aq, ioq;
	char model[41], serial[21], firmware[9];
	uint32_t max_bytes;
	int vwc;
	unsigned err_entries;    /* Error Information log entries kept (ELPE + 1) */
	uint64_t err_seen;       /* newest Error Count already taken from that log */
	uint8_t gen;             /* bumped at every reset: part of each command id */
	struct blk_req *slot_req[SLOTS];
	struct nvme_ns *slot_ns[SLOTS];
	uint64_t slot_seq[SLOTS];  /* `completions` when the slot's command was issued */
	uint64_t slot_errs[SLOTS]; /* `err_seen` then: newer error log entries for its id are its own */
	uint64_t completions;    /* I/O completions reaped: tells a stuck command from a stuck controller */
	/* The last recovery, for `info` and the recovery benchmark. */
	const char *last_step;   /* "abort", "controller reset" or NULL */
	uint64_t t_overdue_us, t_ready_us, t_flowing_us;
	bool awaiting_flow;      /* recovered, no command has completed well since */
	uint64_t *prp_lists;     /* one 4 KiB list page per slot */
	void *scratch;           /* 4 KiB for Identify and log pages */
	struct nvme_ns *ns[MAX_NS];
	int nns, index;
};

struct nvme_ns {
	struct blk_dev dev;
	struct nvme_ctrl *c;
	uint32_t nsid;
	uint64_t nsze;
};

static int nctrl;
static struct nvme_ctrl *ctrls[MAX_CTRL];

static uint32_t r32(struct nvme_ctrl *c, unsigned o) { return mmio_read32(c->regs + o); }
static void w32(struct nvme_ctrl *c, unsigned o, uint32_t v) { mmio_write32(c->regs + o, v); }
static void w64(struct nvme_ctrl *c, unsigned o, uint64_t v) { w32(c, o, (uint32_t)v); w32(c, o + 4, (uint32_t)(v >> 32)); }

struct ready_wait { struct nvme_ctrl *c; uint32_t want; };

/* RDY as wanted, or a fatal status while enabling (then waiting on is pointless). */
static bool ready_or_fatal(void *ctx)
{
	const struct ready_wait *w = ctx;
	uint32_t csts = r32(w->c, REG_CSTS);
	return (csts & CSTS_RDY) == w->want || (w->want && (csts & CSTS_CFS));
}

static int wait_ready(struct nvme_ctrl *c, uint32_t want)
{
	struct ready_wait w = { c, want };
	if (wait_until(ready_or_fatal, &w, c->timeout_ms) < 0)
		return -E_TIMEOUT;
	return (r32(c, REG_CSTS) & CSTS_RDY) == want ? 0 : -E_DEVICE;
}

static void queue_setup(struct nvme_ctrl *c, struct queue *q, uint16_t qid, uint16_t size)
{
	uint32_t stride = 4u << ((c->cap >> 32) & 0xf);
	q->size = size;
	q->tail = q->head = 0;
	q->phase = 1;
	memset(q->sq, 0, sizeof(struct sqe) * size);
	memset((void *)q->cq, 0, sizeof(struct cqe) * size);
	q->sq_db = (volatile uint32_t *)(c->regs + 0x1000 + (2 * qid) * stride);
	q->cq_db = (volatile uint32_t *)(c->regs + 0x1000 + (2 * qid + 1) * stride);
}

static void submit(struct queue *q, const struct sqe *e)
{
	q->sq[q->tail] = *e;
	q->tail = (uint16_t)((q->tail + 1) % q->size);
	mmio_barrier();
	*q->sq_db = q->tail;
}

/* The next completion, or NULL; consumes it. */
static volatile struct cqe *reap(struct queue *q)
{
	volatile struct cqe *e = &q->cq[q->head];
	if ((e->status & 1) != q->phase)
		return NULL;
	q->head = (uint16_t)((q->head + 1) % q->size);
	if (q->head == 0)
		q->phase ^= 1;
	*q->cq_db = q->head;
	return e;
}

struct admin_wait { struct nvme_ctrl *c; uint16_t cid; uint16_t status; uint32_t result; };

/* Reaps the admin queue until the command's own completion (others are stale: dropped). */
static bool admin_done(void *ctx)
{
	struct admin_wait *w = ctx;
	volatile struct cqe *ce;
	while ((ce = reap(&w->c->aq)))
		if (ce->cid == w->cid) {
			w->status = ce->status >> 1;
			w->result = ce->result;
			return true;
		}
	return false;
}

/* Synchronous admin command; returns the NVMe status (0 ok) or -E_TIMEOUT. */
static int admin(struct nvme_ctrl *c, struct sqe *e, uint32_t timeout_ms, uint32_t *result)
{
	static uint16_t acid;
	struct admin_wait w = { c, (uint16_t)(0x8000 | (acid++ & 0x7fff)), 0, 0 };
	e->cdw0 = (e->cdw0 & 0xff) | (uint32_t)w.cid << 16;
	submit(&c->aq, e);
	if (wait_until(admin_done, &w, timeout_ms) < 0)
		return -E_TIMEOUT;
	if (result)
		*result = w.result;
	return w.status;
}

static int identify(struct nvme_ctrl *c, uint32_t cns, uint32_t nsid)
{
	struct sqe e = { .cdw0 = ADM_IDENTIFY, .nsid = nsid, .prp1 = dma_addr(c->scratch), .cdw10 = cns };
	int st = admin(c, &e, IDENTIFY_TIMEOUT_MS, NULL);
	return st == 0 ? 0 : st < 0 ? st : -E_IO;
}

/* Disable, admin queue, enable, I/O queue pair. Used at probe and by the reset step. */
static int ctrl_enable(struct nvme_ctrl *c)
{
	w32(c, REG_CC, 0);
	int rc = wait_ready(c, 0);
	if (rc < 0)
		return rc;
	queue_setup(c, &c->aq, 0, AQ_SIZE);
	w32(c, REG_AQA, (uint32_t)(AQ_SIZE - 1) << 16 | (AQ_SIZE - 1));
	w64(c, REG_ASQ, dma_addr(c->aq.sq));
	w64(c, REG_ACQ, dma_addr((const void *)c->aq.cq));
	w32(c, REG_CC, CC_VALUE);
	rc = wait_ready(c, CSTS_RDY);
	if (rc < 0)
		return rc;
	queue_setup(c, &c->ioq, 1, c->ioq_entries);
	struct sqe cq = { .cdw0 = ADM_CREATE_CQ, .prp1 = dma_addr((const void *)c->ioq.cq),
			  .cdw10 = (uint32_t)(c->ioq_entries - 1) << 16 | 1, .cdw11 = 1 };
	struct sqe sq = { .cdw0 = ADM_CREATE_SQ, .prp1 = dma_addr(c->ioq.sq),
			  .cdw10 = (uint32_t)(c->ioq_entries - 1) << 16 | 1, .cdw11 = 1u << 16 | 1 };
	if (admin(c, &cq, IDENTIFY_TIMEOUT_MS, NULL) != 0 || admin(c, &sq, IDENTIFY_TIMEOUT_MS, NULL) != 0)
		return -E_DEVICE;
	return 0;
}

static uint16_t make_cid(struct nvme_ctrl *c, unsigned slot)
{
	return (uint16_t)((unsigned)c->gen << 8 | slot);
}

static int nvme_start(struct blk_dev *d, struct blk_req *r)
{
	struct nvme_ns *ns = d->drv;
	struct nvme_ctrl *c = ns->c;
	unsigned s;
	for (s = 0; s < c->ioq_entries - 1u && c->slot_req[s]; s++)
		;
	if (s == c->ioq_entries - 1u)
		return -E_BUSY;
	struct sqe e = { .nsid = ns->nsid };
	if (r->op == BLK_FLUSH) {
		e.cdw0 = OP_FLUSH;
	} else {
		uint64_t addr = dma_addr(r->buf), bytes = (uint64_t)r->count * d->lsize;
		e.cdw0 = r->op == BLK_READ ? OP_READ : OP_WRITE;
		e.cdw10 = (uint32_t)r->lba;
		e.cdw11 = (uint32_t)(r->lba >> 32);
		e.cdw12 = (r->count - 1) | ((r->flags & BLK_REQ_FUA) ? 1u << 30 : 0);
		e.prp1 = addr;
		uint64_t first = PAGE_SIZE - (addr & (PAGE_SIZE - 1));
		if (bytes > first) {
			uint64_t next = addr + first, rest = bytes - first;
			if (rest <= PAGE_SIZE) {
				e.prp2 = next;
			} else {
				uint64_t *list = c->prp_lists + (size_t)s * (PAGE_SIZE / 8);
				for (unsigned i = 0; rest; i++, next += PAGE_SIZE)
					list[i] = next, rest = rest > PAGE_SIZE ? rest - PAGE_SIZE : 0;
				e.prp2 = dma_addr(list);
			}
		}
	}
	e.cdw0 |= (uint32_t)make_cid(c, s) << 16;
	c->slot_req[s] = r;
	c->slot_ns[s] = ns;
	c->slot_seq[s] = c->completions;
	c->slot_errs[s] = c->err_seen;
	submit(&c->ioq, &e);
	return 0;
}

static int decode_status(uint16_t st, int op)
{
	unsigned sc = st & 0xff, sct = (st >> 8) & 7;
	if (!sc && !sct)
		return 0;
	if (sct == 2 || (op == BLK_READ && sct == 0 && sc == 0x06))
		return op == BLK_READ ? -E_MEDIUM : -E_IO;   /* media and data integrity errors */
	if (sct == 0 && (sc == 0x01 || sc == 0x02 || sc == 0x0b))
		return -E_UNSUPP;   /* invalid opcode, field or namespace */
	if (sct == 0 && sc == 0x82)
		return -E_AGAIN;    /* namespace not ready */
	if (sct == 0 && sc == 0x07)
		return -E_TIMEOUT;  /* aborted: this driver only asks for that when a deadline passed */
	return -E_IO;
}

/* The LBA a media error names in the Error Information log (01h): the newest entry for this
 * command (I/O queue 1, its id, its namespace) added since it was issued, whose LBA lies within
 * the command. An earlier command with the same id had its entry read at its own completion,
 * before the id was reused, so the Error Count watermark taken at issue rules it out. Entries
 * are valid when their Error Count is non-zero. Without one the command's first LBA bounds it. */
static uint64_t media_error_lba(struct nvme_ctrl *c, struct nvme_ns *ns, uint16_t cid,
				const struct blk_req *r)
{
	memset(c->scratch, 0, PAGE_SIZE);   /* a controller may return less than was asked */
	struct sqe e = { .cdw0 = ADM_LOG, .nsid = 0xffffffff, .prp1 = dma_addr(c->scratch),
			 .cdw10 = (c->err_entries * 64 / 4 - 1) << 16 | 0x01 };
	int st = admin(c, &e, LOG_TIMEOUT_MS, NULL);
	if (st != 0) {
		log_event(LOG_DEBUG, "%s: error log unreadable (status %d): LBA %llu is the command's first",
			  ns->dev.name, st, (unsigned long long)r->lba);
		return r->lba;
	}
	uint64_t best = 0, lba = BLK_NO_LBA, newest = c->err_seen;
	unsigned valid = 0;
	for (unsigned i = 0; i < c->err_entries; i++) {
		const uint8_t *ent = (const uint8_t *)c->scratch + 64 * i;
		uint64_t count, elba;
		uint16_t sqid, ecid;
		uint32_t nsid;
		memcpy(&count, ent, 8);
		memcpy(&sqid, ent + 8, 2);
		memcpy(&ecid, ent + 10, 2);
		memcpy(&elba, ent + 16, 8);
		memcpy(&nsid, ent + 24, 4);
		valid += count != 0;
		if (count > newest)
			newest = count;
		if (!count || count <= c->slot_errs[cid & 0xff] || sqid != 1 || ecid != cid ||
		    (nsid && nsid != ns->nsid) || count < best)
			continue;
		best = count;
		lba = elba;
	}
	c->err_seen = newest;
	if (best && lba >= r->lba && lba - r->lba < r->count) {
		log_event(LOG_DEBUG, "%s: error log entry %llu for command 0x%04x names LBA %llu",
			  ns->dev.name, (unsigned long long)best, cid, (unsigned long long)lba);
		return lba;
	}
	log_event(LOG_DEBUG, "%s: error log (%u valid entries of %u) names no LBA for command 0x%04x: "
		  "LBA %llu is the command's first", ns->dev.name, valid, c->err_entries, cid,
		  (unsigned long long)r->lba);
	return r->lba;
}

static void nvme_poll(struct blk_dev *d)
{
	struct nvme_ctrl *c = ((struct nvme_ns *)d->drv)->c;
	volatile struct cqe *ce;
	while ((ce = reap(&c->ioq))) {
		uint16_t cid = ce->cid, st = ce->status >> 1;
		unsigned s = cid & 0xff;
		*c->ioq.sq_db = c->ioq.tail;   /* keep the doorbell honest; sq_head is informational */
		if ((cid >> 8) != c->gen || s >= SLOTS || !c->slot_req[s])
			continue;   /* from before a reset: never matched to a new command */
		struct blk_req *r = c->slot_req[s];
		struct nvme_ns *ns = c->slot_ns[s];
		c->slot_req[s] = NULL;
		c->completions++;
		int rc = decode_status(st, r->op);
		if (rc == 0 && c->awaiting_flow) {
			c->awaiting_flow = false;
			c->t_flowing_us = time_now_us();
			log_event(LOG_INFO, "nvme%d: I/O flowing again %llu ms after the timeout (%s: %llu ms)",
				  c->index, (unsigned long long)(c->t_flowing_us - c->t_overdue_us) / 1000,
				  c->last_step, (unsigned long long)(c->t_ready_us - c->t_overdue_us) / 1000);
		}
		blk_complete(&ns->dev, r, rc, rc == -E_MEDIUM ? media_error_lba(c, ns, cid, r) : BLK_NO_LBA);
	}
}

/* Asks the controller to abort the overdue command. 0 when it did (or the command finished
 * meanwhile): the rest of the queue is untouched. */

/* The Abort ladder's waits: they poll the queue themselves (pollers do not run while a
 * driver's recovery spins). */
struct slot_wait { struct blk_dev *d; struct nvme_ctrl *c; unsigned slot; struct blk_req *req; };

static bool slot_ended(void *ctx)
{
	struct slot_wait *w = ctx;
	nvme_poll(w->d);
	return w->c->slot_req[w->slot] != w->req;
}

struct drain_wait { struct blk_dev *d; struct nvme_ctrl *c; struct blk_req **left; };

static bool all_ended(void *ctx)
{
	struct drain_wait *w = ctx;
	nvme_poll(w->d);
	for (unsigned i = 0; i < SLOTS; i++)
		if (w->left[i] && w->c->slot_req[i] == w->left[i])
			return false;
	return true;
}

static int abort_overdue(struct nvme_ctrl *c, struct blk_dev *d, struct blk_req *overdue)
{
	unsigned s;
	for (s = 0; s < SLOTS && c->slot_req[s] != overdue; s++)
		;
	if (s == SLOTS || (r32(c, REG_CSTS) & CSTS_CFS))
		return -E_DEVICE;
	/* Completions since it was issued tell a stuck command from a stuck controller. */
	log_event(LOG_WARN, "%s: Abort of command %u (LBA %llu; %llu other commands completed since it was issued)",
		  d->name, s, (unsigned long long)overdue->lba,
		  (unsigned long long)(c->completions - c->slot_seq[s]));
	struct sqe e = { .cdw0 = ADM_ABORT, .cdw10 = (uint32_t)make_cid(c, s) << 16 | 1 };
	uint32_t res = 1;
	int st = admin(c, &e, ABORT_TIMEOUT_MS, &res);
	/* Bit 0 of the result clear: the command was aborted and will complete. */
	struct slot_wait w = { d, c, s, overdue };
	if (wait_until(slot_ended, &w, st == 0 && !(res & 1) ? ABORT_TIMEOUT_MS : 0) < 0) {
		log_event(LOG_WARN, "%s: command %u not aborted (status %d, result %u)", d->name, s, st, res);
		return -E_TIMEOUT;
	}
	/* The layer re-issues what of this disk is still in flight after a recovery: let those
	 * commands finish first, so none is ever live twice (nor DMAs into a reused buffer). */
	struct blk_req *left[SLOTS];
	for (unsigned i = 0; i < SLOTS; i++)
		left[i] = c->slot_ns[i] == d->drv ? c->slot_req[i] : NULL;
	struct drain_wait dw = { d, c, left };
	if (wait_until(all_ended, &dw, DRAIN_TIMEOUT_MS) < 0) {
		log_event(LOG_WARN, "%s: commands still in flight after the Abort", d->name);
		return -E_TIMEOUT;
	}
	return 0;
}

/* The namespace answers Identify with the size and LBA size it had. */
static bool ns_same(struct nvme_ns *ns)
{
	if (identify(ns->c, 0, ns->nsid) < 0)
		return false;
	struct nvme_ns_id id;
	char why[96];
	return nvme_ns_id_parse(ns->c->scratch, &id, why, sizeof(why)) == 0 && id.nsze == ns->nsze &&
	       id.lsize == ns->dev.lsize;
}

/* CC.EN off/on, queues rebuilt, identity compared. Commands of the other namespaces (which
 * the block layer does not know were touched) are re-issued here; those of `ns` are the
 * layer's to re-issue. A controller that does not come back takes every namespace with it. */
static int ctrl_reset(struct nvme_ctrl *c, struct nvme_ns *ns)
{
	struct blk_req *again[SLOTS];
	struct nvme_ns *again_ns[SLOTS];
	unsigned n = 0;
	for (unsigned s = 0; s < SLOTS; s++)
		if (c->slot_req[s] && c->slot_ns[s] != ns) {
			again[n] = c->slot_req[s];
			again_ns[n++] = c->slot_ns[s];
		}
	log_event(LOG_WARN, "nvme%d: controller reset (%u commands of other namespaces to re-issue)",
		  c->index, n);
	c->gen++;
	memset(c->slot_req, 0, sizeof(c->slot_req));
	uint64_t t0 = time_now_us();
	bool up = ctrl_enable(c) == 0 && identify(c, 1, 0) == 0;
	if (up) {
		struct nvme_ctrl_id now;
		nvme_ctrl_id_parse(c->scratch, 12, MAX_BYTES, &now);
		up = !strcmp(now.serial, c->serial) && !strcmp(now.model, c->model);
	}
	for (int i = 0; i < c->nns; i++) {
		struct nvme_ns *o = c->ns[i];
		if (!up || !ns_same(o)) {
			log_event(LOG_ERR, "%s: %s after the controller reset", o->dev.name,
				  up ? "namespace changed" : "no answer or a different controller");
			if (o == ns)
				return -E_GONE;   /* the layer marks it gone */
			blk_set_gone(&o->dev);   /* fails its requests, re-issued ones included */
		}
	}
	/* The reset (QEMU's waits for the backend) must not count against the other namespaces'
	 * commands: the layer restarts the deadlines of what it re-issues; these move by as much. */
	uint64_t spent = time_now_us() - t0;
	for (unsigned i = 0; i < n; i++) {
		if (again_ns[i]->dev.flags & BLK_F_GONE)
			continue;
		again[i]->deadline_us += spent;
		int rc = nvme_start(&again_ns[i]->dev, again[i]);
		if (rc < 0)
			blk_complete(&again_ns[i]->dev, again[i], rc, BLK_NO_LBA);
	}
	return 0;
}

static int nvme_recover(struct blk_dev *d, struct blk_req *overdue)
{
	struct nvme_ns *ns = d->drv;
	struct nvme_ctrl *c = ns->c;
	c->t_overdue_us = time_now_us();
	c->awaiting_flow = false;
	if (!overdue) {
		/* A re-probe of a gone namespace: while a sibling works, the controller is fine and
		 * resetting it would only disturb the sibling. */
		for (int i = 0; i < c->nns; i++)
			if (c->ns[i] != ns && !(c->ns[i]->dev.flags & BLK_F_GONE) &&
			    (r32(c, REG_CSTS) & (CSTS_RDY | CSTS_CFS)) == CSTS_RDY)
				return ns_same(ns) ? 0 : -E_GONE;
	}
	int rc = overdue ? abort_overdue(c, d, overdue) : -E_GONE;
	c->last_step = "abort";
	if (rc < 0) {
		c->last_step = "controller reset";
		rc = ctrl_reset(c, ns);
	}
	if (rc == 0) {
		c->t_ready_us = time_now_us();
		c->awaiting_flow = true;
	}
	return rc;
}

/* The SMART / Health Information log page (02h): every figure on one line, and in words the
 * critical warnings (a failing drive) or the media errors it counted (a warning). */
static int nvme_health(struct blk_dev *d, struct blk_health *out, uint32_t timeout_ms)
{
	struct nvme_ns *ns = d->drv;
	struct nvme_ctrl *c = ns->c;
	if (d->flags & BLK_F_GONE)
		return -E_GONE;
	struct sqe e = { .cdw0 = ADM_LOG, .nsid = 0xffffffff, .prp1 = dma_addr(c->scratch),
			 .cdw10 = (512 / 4 - 1) << 16 | 0x02 };
	int st = admin(c, &e, timeout_ms, NULL);
	if (st != 0)
		return st == -E_TIMEOUT ? st : -E_IO;
	struct nvme_health h;
	nvme_health_parse(c->scratch, &h);
	char temp[16];
	if (h.temperature_c == -1000)
		fmt_snprintf(temp, sizeof(temp), "unknown");
	else
		fmt_snprintf(temp, sizeof(temp), "%d C", h.temperature_c);
	fmt_snprintf(out->detail, sizeof(out->detail), "health: warnings 0x%02x, temperature %s, spare %u%%, used %u%%, media errors %llu, power-on hours %llu",
		     h.warnings, temp, h.spare, h.used, (unsigned long long)h.media_errors,
		     (unsigned long long)h.power_on_hours);
	/* Critical warning bits (NVMe 1.4, figure 194); only the temperature one is passing. */
	static const char *const bits[6] = { "spare below its threshold", "temperature out of range",
					     "reliability degraded", "read-only", "volatile memory backup failed",
					     "persistent memory read-only" };
	char why[100] = "";
	int k = 0;
	for (int b = 0; b < 6; b++)
		if (h.warnings & (1u << b))
			k += fmt_snprintf(why + k, sizeof(why) - (size_t)k, "%s%s", k ? ", " : "", bits[b]);
	if (h.warnings & ~0x02u) {
		out->verdict = BLK_HEALTH_FAILING;
		fmt_snprintf(out->words, sizeof(out->words), "health log: FAILING (%s)", why);
	} else if (h.warnings || h.media_errors || h.used >= 100) {
		out->verdict = BLK_HEALTH_WARNING;
		if (h.media_errors)
			k += fmt_snprintf(why + k, sizeof(why) - (size_t)k, "%s%llu media error%s", k ? ", " : "",
					  (unsigned long long)h.media_errors, h.media_errors == 1 ? "" : "s");
		if (h.used >= 100)
			fmt_snprintf(why + k, sizeof(why) - (size_t)k, "%s%u%% of its rated life used", k ? ", " : "", h.used);
		fmt_snprintf(out->words, sizeof(out->words), "health log: passed, but %s", why);
	} else {
		out->verdict = BLK_HEALTH_PASSED;
		fmt_snprintf(out->words, sizeof(out->words), "health log: passed (spare %u%%, %u%% of its life used)",
			     h.spare, h.used);
	}
	return 0;
}

static void nvme_info(struct blk_dev *d)
{
	struct nvme_ns *ns = d->drv;
	struct nvme_ctrl *c = ns->c;
	kprintf("nvme: pci %02x:%02x.%x, namespace %u, firmware '%s', max transfer %u KiB, volatile cache %s\n",
		c->pci->bus, c->pci->dev, c->pci->fn, ns->nsid, c->firmware, c->max_bytes / 1024,
		c->vwc ? "yes" : "no");
	if (d->wwn_len) {
		char hex[48];
		int n = 0;
		for (unsigned i = 0; i < d->wwn_len; i++)
			n += fmt_snprintf(hex + n, sizeof(hex) - (size_t)n, "%02x", d->wwn[i]);
		kprintf("namespace id: %s %s\n", d->wwn_len == 16 ? "NGUID" : "EUI-64", hex);
	}
	struct blk_health health;
	if (nvme_health(d, &health, HEALTH_TIMEOUT_MS) < 0) {
		kprintf("health log unavailable\n");
		return;
	}
	kprintf("%s\n", health.detail);
	if (c->last_step) {
		kprintf("last recovery: %s, ready %llu ms after the timeout, ", c->last_step,
			(unsigned long long)(c->t_ready_us - c->t_overdue_us) / 1000);
		if (c->awaiting_flow)
			kprintf("no command completed since\n");
		else
			kprintf("I/O flowing again after %llu ms\n",
				(unsigned long long)(c->t_flowing_us - c->t_overdue_us) / 1000);
	}
}

static const struct blk_driver_ops nvme_ops = {
	.start = nvme_start, .poll = nvme_poll, .recover = nvme_recover, .info = nvme_info, .health = nvme_health,
};

static void add_namespace(struct nvme_ctrl *c, uint32_t nsid)
{
	if (c->nns == MAX_NS || identify(c, 0, nsid) < 0)
		return;
	struct nvme_ns_id id;
	char why[96];
	int rc = nvme_ns_id_parse(c->scratch, &id, why, sizeof(why));
	if (rc == 1)
		return;   /* inactive */
	if (rc < 0) {
		log_event(LOG_WARN, "nvme%d: namespace %u: %s: not used", c->index, nsid, why);
		return;
	}
	struct nvme_ns *ns = kzalloc(sizeof(*ns));
	if (!ns)
		return;
	ns->c = c;
	ns->nsid = nsid;
	ns->nsze = id.nsze;
	struct blk_dev *d = &ns->dev;
	fmt_snprintf(d->name, sizeof(d->name), "nvme%dn%u", c->index, nsid);
	d->transport = "nvme";
	d->ops = &nvme_ops;
	d->drv = ns;
	d->sectors = id.nsze;
	d->lsize = d->psize = id.lsize;
	memcpy(d->model, c->model, sizeof(c->model));
	memcpy(d->serial, c->serial, sizeof(c->serial));
	memcpy(d->firmware, c->firmware, sizeof(c->firmware));
	memcpy(d->wwn, id.wwn, sizeof(id.wwn));
	d->wwn_len = id.wwn_len;
	d->max_sectors = c->max_bytes / d->lsize;
	d->queue_depth = c->ioq_entries - 1u;
	d->flags |= BLK_F_FUA | (c->vwc ? BLK_F_FLUSH : 0);
	const struct boot_info *bi = boot_info_get();   /* the namespace cowboot was loaded from */
	if (bi->boot_pci_bus == c->pci->bus && bi->boot_pci_dev == c->pci->dev && bi->boot_pci_fn == c->pci->fn &&
	    bi->boot_port == nsid)
		d->flags |= BLK_F_BOOT;
	if (blk_register(d) < 0) {
		kfree(ns);
		return;
	}
	c->ns[c->nns++] = ns;
}

static bool nvme_match(const struct pci_dev *d)
{
	return d->class == 0x01 && d->subclass == 0x08 && d->progif == 0x02;
}

static int nvme_probe(struct pci_dev *pci)
{
	struct nvme_ctrl *c = kzalloc(sizeof(*c));
	if (!c)
		return -E_NOMEM;
	int rc = -E_UNSUPP;
	c->pci = pci;
	c->regs = pci_bar_ptr(pci, 0);
	if (!c->regs)
		goto free_c;
	pci_enable(pci, true, false, true);
	c->cap = (uint64_t)r32(c, REG_CAP) | (uint64_t)r32(c, REG_CAP + 4) << 32;
	c->timeout_ms = (uint32_t)((c->cap >> 24) & 0xff) * 500;
	if (!c->timeout_ms)
		c->timeout_ms = 500;
	c->ioq_entries = (c->cap & 0xffff) + 1u < IOQ_SIZE ? (uint16_t)((c->cap & 0xffff) + 1) : IOQ_SIZE;
	if ((c->cap >> 48) & 0xf) {   /* CAP.MPSMIN above 4 KiB: this driver's pages are 4 KiB */
		log_event(LOG_WARN, "nvme: pci %02x:%02x.%x needs pages of %u KiB: skipped", pci->bus,
			  pci->dev, pci->fn, 4u << ((c->cap >> 48) & 0xf));
		goto free_c;
	}
	rc = -E_NOMEM;
	c->aq.sq = dma_alloc(sizeof(struct sqe) * AQ_SIZE, PAGE_SIZE);
	c->aq.cq = dma_alloc(sizeof(struct cqe) * AQ_SIZE, PAGE_SIZE);
	c->ioq.sq = dma_alloc(sizeof(struct sqe) * IOQ_SIZE, PAGE_SIZE);
	c->ioq.cq = dma_alloc(sizeof(struct cqe) * IOQ_SIZE, PAGE_SIZE);
	c->prp_lists = dma_alloc((size_t)SLOTS * PAGE_SIZE, PAGE_SIZE);
	c->scratch = dma_alloc(PAGE_SIZE, PAGE_SIZE);
	if (!c->aq.sq || !c->aq.cq || !c->ioq.sq || !c->ioq.cq || !c->prp_lists || !c->scratch)
		goto free_bufs;
	rc = ctrl_enable(c);
	if (rc < 0)
		goto free_bufs;
	rc = identify(c, 1, 0);
	if (rc < 0)
		goto disable;
	struct nvme_ctrl_id cid;
	nvme_ctrl_id_parse(c->scratch, 12, MAX_BYTES, &cid);   /* MPSMIN is 4 KiB, checked above */
	memcpy(c->serial, cid.serial, sizeof(c->serial));
	memcpy(c->model, cid.model, sizeof(c->model));
	memcpy(c->firmware, cid.firmware, sizeof(c->firmware));
	c->max_bytes = cid.max_bytes;
	c->vwc = cid.vwc;
	c->err_entries = cid.err_entries;
	c->shutdown_ms = cid.shutdown_ms;
	c->index = nctrl++;
	uint32_t list[64];
	if (identify(c, 2, 0) == 0) {   /* active namespace list (NVMe 1.1 and later) */
		int n = nvme_ns_list_parse(c->scratch, list, 64);
		for (int i = 0; i < n; i++)
			add_namespace(c, list[i]);
	} else {   /* NVMe 1.0: every id up to NN; inactive ones read as size 0 */
		for (uint32_t i = 1; i <= cid.nn && i <= 64; i++)
			add_namespace(c, i);
	}
	log_event(LOG_INFO, "nvme%d: '%s' serial '%s', %d namespace(s)", c->index, c->model, c->serial, c->nns);
	if (c->index < MAX_CTRL)
		ctrls[c->index] = c;
	return 0;

disable:
	w32(c, REG_CC, 0);
free_bufs:
	dma_free(c->scratch, PAGE_SIZE);
	dma_free(c->prp_lists, (size_t)SLOTS * PAGE_SIZE);
	dma_free((void *)c->ioq.cq, sizeof(struct cqe) * IOQ_SIZE);
	dma_free(c->ioq.sq, sizeof(struct sqe) * IOQ_SIZE);
	dma_free((void *)c->aq.cq, sizeof(struct cqe) * AQ_SIZE);
	dma_free(c->aq.sq, sizeof(struct sqe) * AQ_SIZE);
free_c:
	kfree(c);
	return rc;
}
PCI_DRIVER(nvme, "nvme", nvme_match, nvme_probe);

/* Normal shutdown notification before power-off or reboot: the controller writes its cache
 * and saves its state, as the spec asks of a host before removing power. */
static void nvme_shutdown_all(void)
{
	for (int i = 0; i < MAX_CTRL; i++) {
		struct nvme_ctrl *c = ctrls[i];
		if (!c || (r32(c, REG_CSTS) & (CSTS_RDY | CSTS_CFS)) != CSTS_RDY)
			continue;
		uint64_t t0 = time_now_us();
		w32(c, REG_CC, r32(c, REG_CC) | CC_SHN_NORMAL);
		if (wait_bits32((volatile uint32_t *)(c->regs + REG_CSTS), CSTS_SHST_MASK, CSTS_SHST_DONE,
				c->shutdown_ms) == 0)
			log_event(LOG_INFO, "nvme%d: shut down in %llu ms", c->index,
				  (unsigned long long)(time_now_us() - t0) / 1000);
		else
			log_event(LOG_WARN, "nvme%d: shutdown not complete after %u ms", c->index, c->shutdown_ms);
	}
}
/* Tables run in id order: "zz" puts this after every hook that still writes (the cow commit). */
SHUTDOWN_HOOK(zz_nvme, nvme_shutdown_all);
