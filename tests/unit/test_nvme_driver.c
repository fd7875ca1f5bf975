/* The NVMe driver against a fake controller on the host, for what QEMU 7.2 cannot show: the
 * failing LBA taken from the Error Information log, an Abort that works, stale completions
 * after a reset, a changed identity, NVMe 1.0 namespace discovery, CAP.MQES, shutdown. The fake
 * runs whenever the driver reads the clock, which every wait of the driver does. */
#include "../../drivers/nvme.c"
#include "../lib/check.h"
#include <stdio.h>
#include <stdlib.h>

/* ---- the fake controller ------------------------------------------------------------------ */
struct fq { uint64_t base; uint16_t size, pos; uint8_t phase; bool on; };
struct held { struct sqe e; bool on; };
struct errent { uint64_t count; uint16_t sqid, cid, status, loc; uint64_t lba; uint32_t nsid; uint8_t rest[36]; };

static struct {
	uint8_t regs[0x2000] __attribute__((aligned(4096)));
	uint32_t cc;
	struct fq sq[2], cq[2];
	uint16_t mqes;
	bool v10;                 /* NVMe 1.0: no active namespace list */
	uint32_t nn;
	uint64_t nsze[4];         /* by nsid; 0: inactive */
	char serial[21];
	uint64_t bad_lba;         /* reads covering it fail (UNRECOVERED READ) */
	bool log_fills;           /* ... and leave an error log entry naming it */
	uint64_t log_lba_override;
	uint8_t elpe;
	struct errent log[16];    /* newest first */
	uint64_t errcount;
	uint64_t hang_lba;        /* reads covering it are held */
	uint32_t hang_nsid;
	bool abort_works;
	uint8_t health[512];      /* the SMART / health log page */
	bool health_hangs;        /* the health log command is never answered */
	/* Hostile identify data: per namespace LBA format 0 and FLBAS/NLBAF, MDTS, the list. */
	uint32_t lbaf[4];         /* when lbaf_set; else 512-byte sectors */
	bool lbaf_set[4];
	uint8_t flbas[4], nlbaf[4];
	uint8_t mdts;
	uint32_t list[4];         /* the active namespace list as given, when list[0] */
	struct held held[64];
	int resets, aborts_done;
} F;

static uint64_t now_us;
static uint32_t reg(unsigned o) { uint32_t v; memcpy(&v, F.regs + o, 4); return v; }
static void setreg(unsigned o, uint32_t v) { memcpy(F.regs + o, &v, 4); }

static void post(int q, uint16_t cid, uint16_t status, uint32_t result)
{
	struct fq *c = &F.cq[q];
	struct cqe *e = (struct cqe *)(uintptr_t)c->base + c->pos;
	e->result = result;
	e->sq_head = F.sq[q].pos;
	e->sq_id = (uint16_t)q;
	e->cid = cid;
	e->status = (uint16_t)(status << 1 | c->phase);
	if (++c->pos == c->size)
		c->pos = 0, c->phase ^= 1;
}

static void add_error(uint16_t cid, uint64_t lba, uint32_t nsid)
{
	memmove(&F.log[1], &F.log[0], sizeof(F.log) - sizeof(F.log[0]));
	F.log[0] = (struct errent){ .count = ++F.errcount, .sqid = 1, .cid = cid, .status = 0x281,
				    .lba = lba, .nsid = nsid };
}

static void do_admin(const struct sqe *e)
{
	uint16_t cid = (uint16_t)(e->cdw0 >> 16);
	uint8_t *buf = (uint8_t *)(uintptr_t)e->prp1;
	switch (e->cdw0 & 0xff) {
	case ADM_IDENTIFY:
		if (e->cdw10 == 2 && F.v10) {
			post(0, cid, 0x02, 0);   /* invalid field */
			return;
		}
		memset(buf, 0, 4096);
		if (e->cdw10 == 1) {
			memset(buf + 4, ' ', 20 + 40 + 8);
			memcpy(buf + 4, F.serial, strlen(F.serial));
			memcpy(buf + 24, "Fake NVMe", 9);
			memcpy(buf + 64, "1.0", 3);
			buf[77] = F.mdts;
			buf[262] = F.elpe;
			memcpy(buf + 516, &F.nn, 4);
			buf[525] = 1;
		} else if (e->cdw10 == 0 && e->nsid < 4 && F.nsze[e->nsid]) {
			memcpy(buf, &F.nsze[e->nsid], 8);
			memcpy(buf + 8, &F.nsze[e->nsid], 8);
			uint32_t lbaf = F.lbaf_set[e->nsid] ? F.lbaf[e->nsid] : 9u << 16;
			memcpy(buf + 128, &lbaf, 4);
			buf[25] = F.nlbaf[e->nsid];
			buf[26] = F.flbas[e->nsid];
		} else if (e->cdw10 == 2 && F.list[0]) {
			memcpy(buf, F.list, sizeof(F.list));
		} else if (e->cdw10 == 2) {
			uint32_t *list = (uint32_t *)buf;
			for (uint32_t i = 1, n = 0; i < 4; i++)
				if (F.nsze[i])
					list[n++] = i;
		}
		post(0, cid, 0, 0);
		return;
	case ADM_CREATE_CQ:
		F.cq[1] = (struct fq){ e->prp1, (uint16_t)((e->cdw10 >> 16) + 1), 0, 1, true };
		post(0, cid, (e->cdw10 >> 16) > F.mqes ? 0x102 : 0, 0);
		return;
	case ADM_CREATE_SQ:
		F.sq[1] = (struct fq){ e->prp1, (uint16_t)((e->cdw10 >> 16) + 1), 0, 0, true };
		post(0, cid, (e->cdw10 >> 16) > F.mqes ? 0x102 : 0, 0);
		return;
	case ADM_LOG: {
		size_t len = ((e->cdw10 >> 16) + 1) * 4;
		if ((e->cdw10 & 0xff) == 2 && F.health_hangs)
			return;
		if ((e->cdw10 & 0xff) == 1)
			memcpy(buf, F.log, len < sizeof(F.log) ? len : sizeof(F.log));
		else if ((e->cdw10 & 0xff) == 2)
			memcpy(buf, F.health, len < sizeof(F.health) ? len : sizeof(F.health));
		else
			memset(buf, 0, len);
		post(0, cid, 0, 0);
		return;
	}
	case ADM_ABORT: {
		uint16_t target = (uint16_t)(e->cdw10 >> 16);
		for (int i = 0; i < 64; i++)
			if (F.abort_works && F.held[i].on && (F.held[i].e.cdw0 >> 16) == target) {
				F.held[i].on = false;
				post(1, target, 0x07, 0);   /* command abort requested */
				F.aborts_done++;
				post(0, cid, 0, 0);
				return;
			}
		post(0, cid, 0, 1);   /* not aborted */
		return;
	}
	}
	post(0, cid, 0x01, 0);
}

static void do_io(const struct sqe *e)
{
	uint16_t cid = (uint16_t)(e->cdw0 >> 16);
	uint64_t lba = (uint64_t)e->cdw11 << 32 | e->cdw10;
	uint32_t n = (e->cdw12 & 0xffff) + 1;
	if ((e->cdw0 & 0xff) == OP_READ && F.hang_lba >= lba && F.hang_lba < lba + n &&
	    (!F.hang_nsid || F.hang_nsid == e->nsid)) {
		for (int i = 0; i < 64; i++)
			if (!F.held[i].on) {
				F.held[i] = (struct held){ *e, true };
				return;
			}
	}
	if ((e->cdw0 & 0xff) == OP_READ && F.bad_lba >= lba && F.bad_lba < lba + n) {
		if (F.log_fills)
			add_error(cid, F.log_lba_override ? F.log_lba_override : F.bad_lba, e->nsid);
		post(1, cid, 0x281, 0);
		return;
	}
	post(1, cid, 0, 0);
}

static void fake_step(void)
{
	uint32_t cc = reg(REG_CC);
	if ((cc & 1) && !(F.cc & 1)) {
		uint32_t aqa = reg(REG_AQA);
		F.sq[0] = (struct fq){ (uint64_t)reg(REG_ASQ) | (uint64_t)reg(REG_ASQ + 4) << 32,
				       (uint16_t)((aqa & 0xfff) + 1), 0, 0, true };
		F.cq[0] = (struct fq){ (uint64_t)reg(REG_ACQ) | (uint64_t)reg(REG_ACQ + 4) << 32,
				       (uint16_t)((aqa >> 16) + 1), 0, 1, true };
		setreg(REG_CSTS, CSTS_RDY);
	} else if (!(cc & 1) && (F.cc & 1)) {
		memset(F.sq, 0, sizeof(F.sq));
		memset(F.cq, 0, sizeof(F.cq));
		memset(F.held, 0, sizeof(F.held));
		memset(F.regs + 0x1000, 0, 16);   /* doorbells */
		setreg(REG_CSTS, 0);
		F.resets++;
	}
	if ((cc & CC_SHN_NORMAL) && !(F.cc & CC_SHN_NORMAL))
		setreg(REG_CSTS, reg(REG_CSTS) | CSTS_SHST_DONE);
	F.cc = cc;
	for (int q = 0; q < 2; q++) {
		struct fq *s = &F.sq[q];
		uint32_t tail = reg(0x1000 + 8 * q);
		while (s->on && s->pos != tail) {
			struct sqe e = ((struct sqe *)(uintptr_t)s->base)[s->pos];
			s->pos = (uint16_t)((s->pos + 1) % s->size);
			if (q == 0)
				do_admin(&e);
			else
				do_io(&e);
		}
	}
}

/* ---- what the driver needs from the kernel and the block layer ------------------------------ */
uint64_t time_now_us(void)
{
	fake_step();
	return now_us += 10;
}
int kprintf(const char *fmt, ...) { (void)fmt; return 0; }
static char last_log[512];
static char refusals[8192];   /* every warning, one a line */
void log_event(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(last_log, sizeof(last_log), fmt, ap);
	va_end(ap);
	if (lvl == LOG_WARN && strlen(refusals) + strlen(last_log) + 2 < sizeof(refusals)) {
		strcat(refusals, last_log);
		strcat(refusals, "\n");
	}
	if (getenv("NVME_TEST_VERBOSE"))
		printf("  [%d] %s\n", lvl, last_log);
}
void *dma_alloc(size_t bytes, size_t align) { void *p = aligned_alloc(align, (bytes + align - 1) / align * align); memset(p, 0, bytes); return p; }
void dma_free(void *p, size_t bytes) { (void)bytes; free(p); }
void *kzalloc(size_t n) { return calloc(1, n); }
const struct boot_info *boot_info_get(void) { static const struct boot_info bi = { .boot_pci_bus = 0xffff }; return &bi; }
void kfree(void *p) { free(p); }
volatile void *pci_bar_ptr(struct pci_dev *d, int bar) { (void)d; (void)bar; return F.regs; }
void pci_enable(struct pci_dev *d, bool mem, bool io, bool master) { (void)d; (void)mem; (void)io; (void)master; }

static struct blk_dev *devs[64];
static int ndevs;
int blk_register(struct blk_dev *d) { devs[ndevs++] = d; return 0; }
void blk_complete(struct blk_dev *d, struct blk_req *r, int status, uint64_t err_lba)
{
	(void)d;
	r->status = status;
	r->err_lba = err_lba;
	r->complete = true;
}
static int gone_calls;
void blk_set_gone(struct blk_dev *d) { d->flags |= BLK_F_GONE; gone_calls++; }

static struct blk_dev *dev_named(const char *name)
{
	for (int i = 0; i < ndevs; i++)
		if (!strcmp(devs[i]->name, name))
			return devs[i];
	return NULL;
}

static void start(struct blk_dev *d, struct blk_req *r, uint64_t lba, uint32_t count, void *buf)
{
	*r = (struct blk_req){ .op = BLK_READ, .lba = lba, .count = count, .buf = buf, .dev = d };
	int rc = nvme_start(d, r);
	if (rc < 0)
		blk_complete(d, r, rc, BLK_NO_LBA);
}

static void settle(struct blk_dev *d)
{
	for (int i = 0; i < 5; i++) {
		time_now_us();
		nvme_poll(d);
	}
}

static void fake_init(void)
{
	memset(&F, 0, sizeof(F));
	F.mqes = 0x7ff;
	F.nn = 2;
	F.nsze[1] = 8192;
	F.nsze[2] = 4096;
	F.elpe = 7;
	F.mdts = 5;
	F.bad_lba = F.hang_lba = UINT64_MAX;
	strcpy(F.serial, "FAKE-1");
	setreg(REG_CAP, (uint32_t)F.mqes | 1u << 24);   /* TO 500 ms */
	setreg(REG_CAP + 4, 1u << 5);                    /* CSS: NVM */
}

int main(void)
{
	static uint8_t buf[8 * 4096] __attribute__((aligned(4096)));
	struct pci_dev pci = { .class = 1, .subclass = 8, .progif = 2 };
	fake_init();
	CHECK("probe succeeds", nvme_probe(&pci) == 0);
	struct blk_dev *n1 = dev_named("nvme0n1"), *n2 = dev_named("nvme0n2");
	CHECK("both namespaces are registered", n1 && n2 && n1->sectors == 8192 && n2->sectors == 4096);
	if (!n1 || !n2)
		return CHECK_DONE();
	struct nvme_ctrl *c = ((struct nvme_ns *)n1->drv)->c;
	CHECK("the error log size comes from ELPE", c->err_entries == 8);

	struct blk_req r, r2, r3;
	F.bad_lba = 100;
	F.log_fills = true;
	start(n1, &r, 96, 8, buf);
	settle(n1);
	CHECK("a media error names the LBA from the error log", r.complete && r.status == -E_MEDIUM && r.err_lba == 100);

	F.log_lba_override = 5000;
	start(n1, &r, 96, 8, buf);
	settle(n1);
	CHECK("an error log LBA outside the command is not believed", r.complete && r.err_lba == 96);
	F.log_lba_override = 0;

	/* The same command id fails again but this time the controller logs nothing: the older
	 * entry for that id (LBA 100, inside the range) must not be taken for it. */
	F.log_fills = false;
	F.bad_lba = 101;
	start(n1, &r, 96, 8, buf);
	settle(n1);
	CHECK("an older error log entry with the same command id is not reused",
	      r.complete && r.status == -E_MEDIUM && r.err_lba == 96);

	/* Two errors reaped in one poll: each finds its own entry. */
	F.log_fills = true;
	F.bad_lba = 200;
	start(n1, &r, 200, 1, buf);
	time_now_us();   /* the fake answers; the driver reaps later */
	F.bad_lba = 300;
	start(n1, &r2, 296, 8, buf + 4096);
	time_now_us();
	F.bad_lba = UINT64_MAX;
	nvme_poll(n1);
	CHECK("two media errors in one poll each get their own LBA",
	      r.complete && r.err_lba == 200 && r2.complete && r2.err_lba == 300);
	F.log_fills = false;

	/* An Abort that works: the overdue command completes as a timeout, no reset, and the
	 * disk's other command finishes before recover returns. */
	F.hang_lba = 500;
	F.abort_works = true;
	start(n1, &r, 500, 1, buf);
	start(n1, &r2, 10, 1, buf + 4096);
	time_now_us();
	uint8_t gen = c->gen;
	int rc = nvme_recover(n1, &r);
	CHECK("a working Abort recovers without a reset",
	      rc == 0 && F.aborts_done == 1 && F.resets == 0 && c->gen == gen && !strcmp(c->last_step, "abort"));
	CHECK("the aborted command completes as a timeout", r.complete && r.status == -E_TIMEOUT);
	CHECK("the disk's other command finished during the recovery", r2.complete && r2.status == 0);

	/* An Abort that does not: a reset. The other namespace's held command is re-issued with a
	 * new id, and a stale completion with the old id is dropped. */
	F.abort_works = false;
	F.hang_nsid = 0;
	start(n1, &r, 500, 1, buf);
	start(n2, &r2, 500, 1, buf + 4096);   /* held too: in flight on the other namespace */
	time_now_us();
	unsigned s2 = 0;
	while (c->slot_req[s2] != &r2)
		s2++;
	uint16_t old_cid = make_cid(c, s2);
	F.hang_lba = UINT64_MAX;   /* after the reset the controller answers again */
	rc = nvme_recover(n1, &r);
	CHECK("a failed Abort goes on to a controller reset", rc == 0 && F.resets == 1 && c->gen == (uint8_t)(gen + 1));
	CHECK("the overdue command is left to the block layer", !r.complete);
	settle(n2);
	CHECK("the other namespace's command was re-issued and completed", r2.complete && r2.status == 0);
	F.hang_lba = 700;
	start(n2, &r3, 700, 1, buf);
	time_now_us();
	unsigned s3 = 0;
	while (c->slot_req[s3] != &r3)
		s3++;
	post(1, (uint16_t)((old_cid & 0xff00) | s3), 0, 0);   /* old generation, a busy slot */
	nvme_poll(n2);
	CHECK("a completion from before the reset is dropped", !r3.complete && c->slot_req[s3] == &r3);
	CHECK("I/O flowing again is recorded", !c->awaiting_flow && c->t_flowing_us >= c->t_ready_us);

	/* A different controller behind the same slot: every namespace is gone. */
	strcpy(F.serial, "OTHER");
	rc = nvme_recover(n2, &r3);
	CHECK("a changed identity after the reset fails the recovery", rc == -E_GONE);
	CHECK("the sibling namespace is marked gone", n1->flags & BLK_F_GONE);
	strcpy(F.serial, "FAKE-1");
	F.hang_lba = UINT64_MAX;

	/* A re-probe of the gone n1 while n2 is considered working: no reset needed. */
	n1->flags &= ~BLK_F_GONE;
	int resets = F.resets;
	n2->flags |= BLK_F_GONE;
	rc = nvme_recover(n2, NULL);
	CHECK("a re-probe while a sibling works checks identity without a reset", rc == 0 && F.resets == resets);

	nvme_shutdown_all();
	CHECK("shutdown sets CC.SHN and sees SHST complete", (reg(REG_CC) & CC_SHN_NORMAL) && strstr(last_log, "shut down"));

	/* NVMe 1.0 (no active namespace list), namespace 2 inactive, MQES 15. */
	fake_init();
	F.v10 = true;
	F.nn = 3;
	F.nsze[2] = 0;
	F.nsze[3] = 2048;
	F.mqes = 15;
	setreg(REG_CAP, (uint32_t)F.mqes | 1u << 24);
	int before = ndevs;
	CHECK("an NVMe 1.0 controller probes", nvme_probe(&pci) == 0);
	CHECK("its namespaces are found by NN, the inactive one skipped",
	      ndevs == before + 2 && dev_named("nvme1n1") && dev_named("nvme1n3") && !dev_named("nvme1n2"));
	CHECK("the queue depth follows CAP.MQES", dev_named("nvme1n1") && dev_named("nvme1n1")->queue_depth == 15);
	struct blk_dev *m1 = dev_named("nvme1n1");
	if (m1) {
		struct blk_req q[20];
		int busy = 0;
		for (int i = 0; i < 20; i++) {
			q[i] = (struct blk_req){ .op = BLK_READ, .lba = (uint64_t)i, .count = 1, .buf = buf };
			busy += nvme_start(m1, &q[i]) == -E_BUSY;
		}
		CHECK("no more commands than the queue holds", busy == 5);
		settle(m1);
	}

	/* Hostile Identify data: each bad namespace is refused with the reason, the good one beside
	 * it still works; nothing is sized from the nonsense. */
	static const struct { uint32_t lbaf; uint8_t flbas, nlbaf; const char *why; } bad[] = {
		{ 0u << 16, 0, 0, "namespace 1: LBADS 0 (sectors must be 512 B..64 KiB): not used" },
		{ 40u << 16, 0, 0, "namespace 1: LBADS 40 (sectors must be 512 B..64 KiB): not used" },
		{ 8u << 16, 0, 0, "LBADS 8" },
		{ 17u << 16, 0, 0, "LBADS 17" },
		{ 9u << 16, 5, 0, "namespace 1: FLBAS selects LBA format 5 of 1: not used" },
		{ 9u << 16, 15, 3, "FLBAS selects LBA format 15 of 4" },
		{ 9u << 16 | 8, 0, 0, "8 bytes of metadata per sector" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fake_init();
		F.lbaf[1] = bad[i].lbaf;
		F.lbaf_set[1] = true;
		F.flbas[1] = bad[i].flbas;
		F.nlbaf[1] = bad[i].nlbaf;
		char name[32], msg[160];
		snprintf(name, sizeof(name), "nvme%dn1", nctrl);
		refusals[0] = '\0';
		int probed = nvme_probe(&pci);
		snprintf(msg, sizeof(msg), "%s is refused, named, its sibling kept", bad[i].why);
		char sibling[32];
		snprintf(sibling, sizeof(sibling), "nvme%dn2", nctrl - 1);
		bool logged = strstr(refusals, bad[i].why) != NULL;
		CHECK(msg, probed == 0 && !dev_named(name) && dev_named(sibling) && logged);
	}
	struct blk_dev *sib = dev_named("nvme8n2");
	if (sib) {
		struct blk_req q1;
		start(sib, &q1, 0, 8, buf);
		settle(sib);
		CHECK("the sibling of a refused namespace reads", q1.complete && q1.status == 0);
	}

	fake_init();
	F.mdts = 200;   /* 4 KiB << 200 would be undefined */
	CHECK("an MDTS of 200 probes", nvme_probe(&pci) == 0);
	struct blk_dev *mx = dev_named("nvme9n1");
	CHECK("... and leaves the driver's own transfer limit", mx && mx->max_sectors == MAX_BYTES / 512);
	fake_init();
	F.mdts = 1;
	nvme_probe(&pci);
	mx = dev_named("nvme10n1");
	CHECK("MDTS 1 limits transfers to 8 KiB", mx && mx->max_sectors == 16);

	fake_init();
	F.list[0] = 2, F.list[1] = 1, F.list[2] = 2;   /* out of order: the list ends at 1 */
	nvme_probe(&pci);
	CHECK("an active namespace list out of order is cut where it breaks",
	      dev_named("nvme11n2") && !dev_named("nvme11n1"));

	/* Health in words, and a health log that never comes back costs the caller's deadline. */
	fake_init();
	F.health[0] = 0x04;   /* reliability degraded */
	F.health[1] = 0x2c, F.health[2] = 0x01;   /* 300 K */
	F.health[3] = 100;
	CHECK("a controller for the health checks probes", nvme_probe(&pci) == 0);
	struct blk_dev *hd = dev_named("nvme12n1");
	struct blk_health h;
	CHECK("critical warnings make a failing verdict, in words",
	      hd && hd->ops->health(hd, &h, 1000) == 0 && h.verdict == BLK_HEALTH_FAILING &&
	      !strcmp(h.words, "health log: FAILING (reliability degraded)") &&
	      strstr(h.detail, "warnings 0x04, temperature 27 C, spare 100%"));
	F.health[0] = 0;
	F.health[160] = 3;    /* media errors */
	CHECK("media errors alone are a warning",
	      hd && hd->ops->health(hd, &h, 1000) == 0 && h.verdict == BLK_HEALTH_WARNING &&
	      !strcmp(h.words, "health log: passed, but 3 media errors"));
	F.health[160] = 0;
	CHECK("a clean log passes", hd && hd->ops->health(hd, &h, 1000) == 0 && h.verdict == BLK_HEALTH_PASSED &&
	      !strcmp(h.words, "health log: passed (spare 100%, 0% of its life used)"));
	F.health_hangs = true;
	uint64_t t0 = now_us;
	CHECK("a health log that never answers times out at the caller's deadline",
	      hd && hd->ops->health(hd, &h, 300) == -E_TIMEOUT && now_us - t0 >= 300000 && now_us - t0 < 310000);
	F.health_hangs = false;
	CHECK("... and the next one is answered", hd && hd->ops->health(hd, &h, 1000) == 0 &&
	      h.verdict == BLK_HEALTH_PASSED);
	return CHECK_DONE();
}
