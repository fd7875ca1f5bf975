/* AHCI (SATA) driver: NCQ (up to 32 commands in flight) or one DMA command at a time per port,
 * polled completion, ATA error decoding with the failing LBA, and a reset ladder (port restart
 * with CLO, COMRESET, HBA reset) after which IDENTIFY must answer with the same identity. */
#include "blk.h"
#include "../lib/ata_id.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/pci.h"
#include "../kernel/settings.h"
#include "../kernel/shell.h"
#include "../kernel/task.h"
#include "../kernel/time.h"

/* HBA registers. */
#define CAP    0x00
#define GHC    0x04
#define PI     0x0c
#define CAP2   0x24
#define BOHC   0x28
#define GHC_HR (1u << 0)
#define GHC_AE (1u << 31)
#define CAP_SSS (1u << 27)
#define CAP_SNCQ (1u << 30)
/* Port registers, at 0x100 + 0x80 * port. */
#define PxCLB  0x00
#define PxCLBU 0x04
#define PxFB   0x08
#define PxFBU  0x0c
#define PxIS   0x10
#define PxIE   0x14
#define PxCMD  0x18
#define PxTFD  0x20
#define PxSIG  0x24
#define PxSSTS 0x28
#define PxSCTL 0x2c
#define PxSERR 0x30
#define PxSACT 0x34
#define PxCI   0x38
#define CMD_ST  (1u << 0)
#define CMD_SUD (1u << 1)
#define CMD_CLO (1u << 3)
#define CMD_FRE (1u << 4)
#define CMD_FR  (1u << 14)
#define CMD_CR  (1u << 15)
#define IS_TFES (1u << 30)
#define IS_PCS  (1u << 6)        /* port connect change (SERR.DIAG.X) */
#define IS_PRCS (1u << 22)       /* PhyRdy change (SERR.DIAG.N) */
#define IS_FATAL (IS_TFES | (1u << 29) | (1u << 28) | (1u << 27) | (1u << 24))
#define TFD_BSY 0x80
#define TFD_DRQ 0x08
#define TFD_ERR 0x01
#define ERR_ABRT 0x04
#define ERR_UNC  0x40
#define ERR_ICRC 0x80
/* ATA commands. */
#define ATA_IDENTIFY        0xec
#define ATA_READ_DMA_EXT    0x25
#define ATA_WRITE_DMA_EXT   0x35
#define ATA_WRITE_FUA_EXT   0x3d
#define ATA_FLUSH_EXT       0xea
#define ATA_READ_FPDMA      0x60
#define ATA_WRITE_FPDMA     0x61
#define ATA_SMART           0xb0
#define SMART_READ_DATA     0xd0
#define SMART_RETURN_STATUS 0xda

#define MAX_BYTES (4u << 20)     /* one PRD entry per command */
/* Deadlines (AHCI 1.3.1 and SATA: the engine stops within 500 ms, a link comes up within a
 * second of COMRESET, a BIOS hands over within 25 ms unless it says it is busy). */
#define CMD_TIMEOUT_MS          5000   /* internal commands (IDENTIFY) during probe and recovery */
#define ENGINE_TIMEOUT_MS        500   /* PxCMD.CR/FR to clear after ST/FRE, CLO to complete */
#define PORT_IDLE_TIMEOUT_MS    1000   /* BSY and DRQ to clear before the engine starts */
#define LINK_TIMEOUT_MS         1000   /* the link after COMRESET */
#define HBA_RESET_TIMEOUT_MS    1000   /* GHC.HR to clear */
#define BIOS_HANDOFF_TIMEOUT_MS   25   /* BOHC.BOS to clear */

struct cmd_header { uint32_t dw0, prdbc, ctba, ctbau, rsvd[4]; };
struct prd { uint32_t dba, dbau, rsvd, dbc; };
struct cmd_table { uint8_t cfis[64], acmd[16], rsvd[48]; struct prd prd[1]; };
#define NSLOTS 32
#define NCQ_MAX_UNEXPLAINED 3
#define CT_STRIDE 256            /* one command table per slot, 128-byte aligned */

struct ahci_port;

/* One controller: what an HBA reset needs to bring every port back. */
struct ahci_ctrl {
	struct pci_dev *pci;
	volatile uint8_t *hba;
	uint32_t cap;
	struct ahci_port *ports[32];     /* ports with a registered disk */
};

struct ahci_port {
	struct blk_dev dev;
	struct ahci_ctrl *ctrl;
	volatile uint8_t *hba;
	volatile uint8_t *regs;
	unsigned port;
	uint32_t cap;
	struct cmd_header *cl;
	uint8_t *fis;
	struct cmd_table *ct;
	uint16_t *ident;                 /* 512-byte IDENTIFY buffer */
	struct ata_identity id;          /* what the last IDENTIFY said */
	uint8_t *smart;                  /* 512-byte SMART READ DATA buffer */
	struct blk_req *busy;            /* the one non-NCQ command, in slot 0 */
	struct blk_req *slot_req[NSLOTS];/* NCQ commands in flight, by tag */
	uint32_t ncq_mask;               /* tags in flight */
	uint32_t ncq_depth;              /* 0: no NCQ (HBA or drive lacks it) */
	uint32_t ncq_most;               /* most NCQ commands seen in flight at once */
	uint64_t ncq_errors;
	/* Commands taken back after an NCQ error or a reset: issued again one at a time without NCQ,
	 * so the one that fails is known and reported with its own status. */
	struct blk_req *redo[NSLOTS + 1];
	unsigned nredo;
	bool refused_logged;             /* a returned device with another identity, said once */
	/* An NCQ error whose commands all succeed when issued again without NCQ points at the
	 * drive's or the HBA's NCQ itself: after NCQ_MAX_UNEXPLAINED of them the port stays off NCQ. */
	unsigned round_left;             /* commands of the current one-at-a-time round */
	bool round_failed;
	unsigned ncq_unexplained;
	bool ncq_given_up;
	uint64_t ident_sectors;
	struct pci_dev *pci;
};

static int nsata;
static struct ahci_port *all_ports[64];
static unsigned nports;

static uint64_t sata_ncq = 1;
static const char *const onoff_names[] = { "off", "on", NULL };
SETTING(sata_ncq, "sata-ncq", "NCQ on SATA disks that have it (off: one command at a time)",
	&sata_ncq, onoff_names, 0, 1);

static struct cmd_table *slot_ct(struct ahci_port *p, unsigned slot)
{
	return (struct cmd_table *)((uint8_t *)p->ct + slot * CT_STRIDE);
}

static uint32_t prd_rd(struct ahci_port *p, unsigned r) { return mmio_read32(p->regs + r); }
static void prd_wr(struct ahci_port *p, unsigned r, uint32_t v) { mmio_write32(p->regs + r, v); }

static int port_stop(struct ahci_port *p)
{
	prd_wr(p, PxCMD, prd_rd(p, PxCMD) & ~CMD_ST);
	if (wait_bits32((volatile uint32_t *)(p->regs + PxCMD), CMD_CR, 0, ENGINE_TIMEOUT_MS) < 0)
		return -E_TIMEOUT;
	prd_wr(p, PxCMD, prd_rd(p, PxCMD) & ~CMD_FRE);
	return wait_bits32((volatile uint32_t *)(p->regs + PxCMD), CMD_FR, 0, ENGINE_TIMEOUT_MS);
}

/* Starts FIS receive and the command engine; clears a stuck BSY/DRQ with CLO first. */
static int port_start(struct ahci_port *p)
{
	prd_wr(p, PxSERR, 0xffffffff);
	prd_wr(p, PxIS, 0xffffffff);
	prd_wr(p, PxCMD, prd_rd(p, PxCMD) | CMD_FRE);
	if (prd_rd(p, PxTFD) & (TFD_BSY | TFD_DRQ)) {
		prd_wr(p, PxCMD, prd_rd(p, PxCMD) | CMD_CLO);
		wait_bits32((volatile uint32_t *)(p->regs + PxCMD), CMD_CLO, 0, ENGINE_TIMEOUT_MS);
	}
	if (wait_bits32((volatile uint32_t *)(p->regs + PxTFD), TFD_BSY | TFD_DRQ, 0, PORT_IDLE_TIMEOUT_MS) < 0)
		return -E_TIMEOUT;
	prd_wr(p, PxCMD, prd_rd(p, PxCMD) | CMD_ST);
	return 0;
}

static int link_up(struct ahci_port *p)
{
	return (prd_rd(p, PxSSTS) & 0xf) == 3;
}

static bool link_is_up(void *p)
{
	return link_up(p);
}

/* Builds slot 0's command: a register H2D FIS and one PRD entry. */
/* Builds a command in `slot`: a register H2D FIS and one PRD entry; NCQ commands are marked
 * in PxSACT before PxCI. */
static void build_slot(struct ahci_port *p, unsigned slot, uint8_t ata_cmd, uint16_t feature,
		       uint64_t lba, uint16_t count, uint8_t device, void *buf, uint32_t bytes,
		       int write, int ncq)
{
	struct cmd_table *t = slot_ct(p, slot);
	memset(t, 0, sizeof(*t));
	uint8_t *f = t->cfis;
	f[0] = 0x27;                 /* register FIS, host to device */
	f[1] = 0x80;                 /* command, not control */
	f[2] = ata_cmd;
	f[3] = (uint8_t)feature;
	f[11] = (uint8_t)(feature >> 8);
	f[4] = (uint8_t)lba;
	f[5] = (uint8_t)(lba >> 8);
	f[6] = (uint8_t)(lba >> 16);
	f[7] = device;
	f[8] = (uint8_t)(lba >> 24);
	f[9] = (uint8_t)(lba >> 32);
	f[10] = (uint8_t)(lba >> 40);
	f[12] = (uint8_t)count;
	f[13] = (uint8_t)(count >> 8);
	uint16_t prdtl = 0;
	if (bytes) {
		t->prd[0].dba = (uint32_t)dma_addr(buf);
		t->prd[0].dbau = (uint32_t)(dma_addr(buf) >> 32);
		t->prd[0].dbc = bytes - 1;
		prdtl = 1;
	}
	p->cl[slot].dw0 = 5u | (write ? 1u << 6 : 0) | (uint32_t)prdtl << 16;
	p->cl[slot].prdbc = 0;
	mmio_barrier();
	if (ncq)
		prd_wr(p, PxSACT, 1u << slot);
	prd_wr(p, PxCI, 1u << slot);
}

static void build_cmd_feat(struct ahci_port *p, uint8_t ata_cmd, uint8_t feature, uint64_t lba,
			   uint32_t count, void *buf, uint32_t bytes, int write)
{
	build_slot(p, 0, ata_cmd, feature, lba, (uint16_t)count, 0x40 /* LBA mode */, buf, bytes,
		   write, 0);
}

static void build_cmd(struct ahci_port *p, uint8_t ata_cmd, uint64_t lba, uint32_t count,
		      void *buf, uint32_t bytes, int write)
{
	build_cmd_feat(p, ata_cmd, 0, lba, count, buf, bytes, write);
}

/* The status of the command in slot 0: 1 still running, 0 done, negative on an error, with
 * the failing LBA from the device's D2H FIS for media errors. */
static int cmd_status(struct ahci_port *p, uint64_t *err_lba)
{
	uint32_t is = prd_rd(p, PxIS);
	if (is & IS_FATAL) {
		uint32_t tfd = prd_rd(p, PxTFD);
		uint8_t err = (uint8_t)(tfd >> 8);
		const uint8_t *d2h = p->fis + 0x40;
		*err_lba = (uint64_t)d2h[4] | (uint64_t)d2h[5] << 8 | (uint64_t)d2h[6] << 16 |
			   (uint64_t)d2h[8] << 24 | (uint64_t)d2h[9] << 32 | (uint64_t)d2h[10] << 40;
		if (err & ERR_UNC)
			return -E_MEDIUM;
		*err_lba = BLK_NO_LBA;
		if (err & ERR_ABRT)
			return -E_UNSUPP;
		return -E_IO;   /* interface / CRC / host bus errors: worth a retry by the caller */
	}
	return prd_rd(p, PxCI) & 1 ? 1 : 0;
}

/* After an error the port must be restarted before the next command (AHCI 1.3.1, 6.2.2). */
static void port_recover_error(struct ahci_port *p)
{
	port_stop(p);
	port_start(p);
}

struct internal_wait { struct ahci_port *p; int rc; };

static bool internal_done(void *ctx)
{
	struct internal_wait *w = ctx;
	uint64_t err_lba;
	return (w->rc = cmd_status(w->p, &err_lba)) != 1;
}

static int run_internal_feat(struct ahci_port *p, uint8_t cmd, uint8_t feature, uint64_t lba,
			     void *buf, uint32_t bytes, uint32_t timeout_ms)
{
	build_cmd_feat(p, cmd, feature, lba, 0, buf, bytes, 0);
	struct internal_wait w = { p, 1 };
	if (wait_until(internal_done, &w, timeout_ms) < 0)
		return -E_TIMEOUT;
	int rc = w.rc;
	if (rc < 0)
		port_recover_error(p);
	return rc;
}

static int run_internal(struct ahci_port *p, uint8_t cmd, void *buf, uint32_t bytes)
{
	return run_internal_feat(p, cmd, 0, 0, buf, bytes, CMD_TIMEOUT_MS);
}

/* IDENTIFY into p->ident, parsed (lib/ata_id.c) into `d`; `why` says what was wrong. */
static int identify(struct ahci_port *p, struct blk_dev *d, char *why, size_t whylen)
{
	int rc = run_internal(p, ATA_IDENTIFY, p->ident, 512);
	if (rc < 0) {
		fmt_snprintf(why, whylen, "IDENTIFY failed (%s)", err_str(rc));
		return rc;
	}
	struct ata_identity id;
	rc = ata_identify_parse((const uint8_t *)p->ident, &id, why, whylen);
	if (rc < 0)
		return rc;
	memcpy(d->model, id.model, sizeof(id.model));
	memcpy(d->serial, id.serial, sizeof(id.serial));
	memcpy(d->firmware, id.firmware, sizeof(id.firmware));
	d->sectors = id.sectors;
	d->lsize = id.lsize;
	d->psize = id.psize;
	if (id.fua)
		d->flags |= BLK_F_FUA;
	if (id.volatile_cache)
		d->flags |= BLK_F_FLUSH;
	if (d == &p->dev)
		p->id = id;
	p->ncq_depth = 0;
	if ((p->cap & CAP_SNCQ) && id.ncq_depth) {
		uint32_t hba_slots = ((p->cap >> 8) & 0x1f) + 1;
		p->ncq_depth = hba_slots < id.ncq_depth ? hba_slots : id.ncq_depth;
	}
	return 0;
}

static void issue(struct ahci_port *p, struct blk_req *r)
{
	struct blk_dev *d = &p->dev;
	uint32_t bytes = r->count * d->lsize;
	if (r->op == BLK_READ)
		build_cmd(p, ATA_READ_DMA_EXT, r->lba, r->count, r->buf, bytes, 0);
	else if (r->op == BLK_WRITE)
		build_cmd(p, (r->flags & BLK_REQ_FUA) ? ATA_WRITE_FUA_EXT : ATA_WRITE_DMA_EXT, r->lba,
			  r->count, r->buf, bytes, 1);
	else
		build_cmd(p, ATA_FLUSH_EXT, 0, 0, NULL, 0, 0);
}

/* Not __builtin_popcount: without -mpopcnt it calls libgcc, which the image does not link. */
static unsigned bits_set(uint32_t v)
{
	unsigned n = 0;
	for (; v; v &= v - 1)
		n++;
	return n;
}

static bool ncq_on(struct ahci_port *p)
{
	return sata_ncq && p->ncq_depth && !p->ncq_given_up;
}

static void issue_ncq(struct ahci_port *p, unsigned tag, struct blk_req *r)
{
	bool w = r->op == BLK_WRITE;
	uint8_t device = 0x40 | (w && (r->flags & BLK_REQ_FUA) ? 0x80 : 0);
	build_slot(p, tag, w ? ATA_WRITE_FPDMA : ATA_READ_FPDMA, (uint16_t)r->count, r->lba,
		   (uint16_t)(tag << 3), device, r->buf, r->count * p->dev.lsize, w, 1);
}

/* Takes back every command in flight on the port, to be issued again one at a time. */
static void requeue_all(struct ahci_port *p)
{
	if (p->busy)
		p->redo[p->nredo++] = p->busy;
	p->busy = NULL;
	for (unsigned t = 0; t < NSLOTS; t++)
		if (p->ncq_mask & (1u << t))
			p->redo[p->nredo++] = p->slot_req[t];
	p->ncq_mask = 0;
}

static void drop_all(struct ahci_port *p)
{
	p->busy = NULL;
	p->ncq_mask = 0;
	p->nredo = 0;
	p->round_left = 0;
}

/* One command of the round after an NCQ error finished with `rc`. */
static void round_done(struct ahci_port *p, int rc)
{
	if (!p->round_left)
		return;
	if (rc < 0)
		p->round_failed = true;
	if (--p->round_left || p->round_failed)
		return;
	p->ncq_unexplained++;
	log_event(LOG_WARN, "%s: the NCQ error did not repeat without NCQ (%u so far)", p->dev.name,
		  p->ncq_unexplained);
	if (p->ncq_unexplained >= NCQ_MAX_UNEXPLAINED && !p->ncq_given_up) {
		p->ncq_given_up = true;
		log_event(LOG_WARN, "%s: NCQ turned off for this disk", p->dev.name);
	}
}

static void next_redo(struct ahci_port *p)
{
	if (p->busy || p->ncq_mask || !p->nredo)
		return;
	p->busy = p->redo[0];
	p->nredo--;
	memmove(p->redo, p->redo + 1, p->nredo * sizeof(p->redo[0]));
	issue(p, p->busy);
}

static int ahci_start(struct blk_dev *d, struct blk_req *r)
{
	struct ahci_port *p = d->drv;
	if (p->busy || p->nredo)
		return -E_BUSY;
	if (ncq_on(p) && r->op != BLK_FLUSH) {
		unsigned tag = 0;
		while (tag < p->ncq_depth && (p->ncq_mask & (1u << tag)))
			tag++;
		if (tag == p->ncq_depth)
			return -E_BUSY;
		p->slot_req[tag] = r;
		p->ncq_mask |= 1u << tag;
		unsigned n = bits_set(p->ncq_mask);
		if (n > p->ncq_most)
			p->ncq_most = n;
		issue_ncq(p, tag, r);
		return 0;
	}
	if (p->ncq_mask)
		return -E_BUSY;   /* a non-NCQ command (FLUSH) waits until the queue drains */
	p->busy = r;
	issue(p, r);
	return 0;
}

/* NCQ completions: a tag is done when the device cleared it in PxSACT (Set Device Bits FIS) and
 * the HBA in PxCI. An error (TFES) stops the queue without saying which tag failed, so the
 * port is restarted and every command taken back to be issued again without NCQ. PxIS is read
 * after the completion bits: a tag that cleared before an error is then also issued again. */
static void ncq_poll(struct ahci_port *p)
{
	struct blk_dev *d = &p->dev;
	uint32_t act = prd_rd(p, PxSACT), ci = prd_rd(p, PxCI), is = prd_rd(p, PxIS);
	if (is & IS_FATAL) {
		p->ncq_errors++;
		log_event(LOG_WARN, "%s: NCQ error (TFD 0x%x, %u in flight), issuing them again one at a time",
			  d->name, prd_rd(p, PxTFD), bits_set(p->ncq_mask));
		port_recover_error(p);
		requeue_all(p);
		p->round_left = p->nredo;
		p->round_failed = false;
		return;
	}
	uint32_t done = p->ncq_mask & ~(act | ci);
	for (unsigned t = 0; done && t < NSLOTS; t++) {
		if (!(done & (1u << t)))
			continue;
		done &= ~(1u << t);
		struct blk_req *r = p->slot_req[t];
		p->ncq_mask &= ~(1u << t);
		blk_complete(d, r, 0, BLK_NO_LBA);
	}
}

static void single_poll(struct ahci_port *p)
{
	struct blk_dev *d = &p->dev;
	uint64_t err_lba = BLK_NO_LBA;
	int rc = cmd_status(p, &err_lba);
	if (rc == 1)
		return;
	struct blk_req *r = p->busy;
	p->busy = NULL;
	/* A read the drive refused is a failed range for the rescue, whatever the error bits say
	 * (QEMU's IDE reports ABRT, real drives UNC); name the LBA it gave if it is in range. */
	if (r->op == BLK_READ && (rc == -E_MEDIUM || rc == -E_UNSUPP)) {
		rc = -E_MEDIUM;
		if (err_lba < r->lba || err_lba >= r->lba + r->count)
			err_lba = r->lba;
	}
	if (rc < 0) {
		/* A media error is the caller's to report (a rescue meets thousands); others warn. */
		log_event(rc == -E_MEDIUM ? LOG_DEBUG : LOG_WARN, "%s: %s (TFD 0x%x)", d->name, err_str(rc),
			  prd_rd(p, PxTFD));
		port_recover_error(p);
	}
	round_done(p, rc);
	blk_complete(d, r, rc, rc == -E_MEDIUM ? err_lba : BLK_NO_LBA);
}

static void ahci_poll(struct blk_dev *d)
{
	struct ahci_port *p = d->drv;
	if (p->ncq_mask)
		ncq_poll(p);
	else if (p->busy)
		single_poll(p);
	next_redo(p);
}

static int same_identity(struct ahci_port *p)
{
	struct blk_dev now = { 0 };
	char why[96];
	if (identify(p, &now, why, sizeof(why)) < 0)
		return 0;
	return !strcmp(now.model, p->dev.model) && !strcmp(now.serial, p->dev.serial) &&
	       now.sectors == p->dev.sectors;
}

static int comreset(struct ahci_port *p)
{
	port_stop(p);
	prd_wr(p, PxSCTL, (prd_rd(p, PxSCTL) & ~0xfu) | 1);
	time_delay_us(2000);
	prd_wr(p, PxSCTL, prd_rd(p, PxSCTL) & ~0xfu);
	if (wait_until(link_is_up, p, LINK_TIMEOUT_MS) < 0)
		return -E_GONE;
	return port_start(p);
}

/* Programs the port's command list and FIS areas, spins it up and starts it once the link is
 * up (within link_ms). The HBA reset clears all of these, so it runs at probe and after one. */
static int port_bringup(struct ahci_port *p, unsigned link_ms)
{
	int rc = port_stop(p);
	if (rc < 0)
		return rc;
	prd_wr(p, PxCLB, (uint32_t)dma_addr(p->cl));
	prd_wr(p, PxCLBU, (uint32_t)(dma_addr(p->cl) >> 32));
	prd_wr(p, PxFB, (uint32_t)dma_addr(p->fis));
	prd_wr(p, PxFBU, (uint32_t)(dma_addr(p->fis) >> 32));
	for (unsigned i = 0; i < NSLOTS; i++) {
		p->cl[i].ctba = (uint32_t)dma_addr(slot_ct(p, i));
		p->cl[i].ctbau = (uint32_t)(dma_addr(slot_ct(p, i)) >> 32);
	}
	prd_wr(p, PxIE, 0);
	if (p->cap & CAP_SSS)
		prd_wr(p, PxCMD, prd_rd(p, PxCMD) | CMD_SUD);
	if (wait_until(link_is_up, p, link_ms) < 0)
		return -E_NOENT;
	/* The signature arrives in the first D2H FIS, so only once FIS receive is on. */
	return port_start(p);
}

/* GHC.HR resets every port of the controller, so each is brought up again and must answer with
 * its identity; a neighbour that does not (or answers as another disk) is gone, one that does
 * gets its command in flight issued again. Returns the outcome for `self`. */
static int hba_reset(struct ahci_port *self)
{
	struct ahci_ctrl *c = self->ctrl;
	for (unsigned i = 0; i < 32; i++)
		if (c->ports[i]) {
			requeue_all(c->ports[i]);
			port_stop(c->ports[i]);
		}
	mmio_write32(c->hba + GHC, mmio_read32(c->hba + GHC) | GHC_AE);
	mmio_write32(c->hba + GHC, mmio_read32(c->hba + GHC) | GHC_HR);
	if (wait_bits32((volatile uint32_t *)(c->hba + GHC), GHC_HR, 0, HBA_RESET_TIMEOUT_MS) < 0)
		return -E_TIMEOUT;
	mmio_write32(c->hba + GHC, GHC_AE);
	int self_rc = -E_GONE;
	for (unsigned i = 0; i < 32; i++) {
		struct ahci_port *p = c->ports[i];
		if (!p)
			continue;
		int rc = port_bringup(p, 1000);
		if (rc == 0 && !same_identity(p))
			rc = -E_IDENTITY;
		if (p == self) {
			self_rc = rc;
			continue;
		}
		if (p->dev.flags & BLK_F_GONE)
			continue;   /* blk_reprobe brings it back */
		if (rc < 0) {
			log_event(LOG_ERR, "%s: lost in the HBA reset (%s)", p->dev.name, err_str(rc));
			drop_all(p);
			blk_set_gone(&p->dev);
		} else {
			if (p->nredo)
				log_event(LOG_INFO, "%s: %u command(s) issued again after the HBA reset",
					  p->dev.name, p->nredo);
			next_redo(p);
		}
	}
	return self_rc;
}

enum rung { RUNG_PORT, RUNG_COMRESET, RUNG_HBA };
static const char *const rung_names[] = { "port", "comreset", "hba" };

/* The ladder from a given rung: restart the port (CLO clears a wedged BSY), COMRESET, then the
 * HBA reset; each step counts only when IDENTIFY answers with the same model, serial and
 * capacity. A disk that answers as another one is gone, never taken for the old one. */
static int ladder(struct ahci_port *p, enum rung from)
{
	const char *name = p->dev.name;
	uint64_t t0 = time_now_us();
	enum rung at = from;
	if (at == RUNG_PORT) {
		log_event(LOG_WARN, "%s: port restart", name);
		if (port_stop(p) == 0 && port_start(p) == 0 && same_identity(p))
			goto answered;
		at = RUNG_COMRESET;
	}
	if (at == RUNG_COMRESET) {
		log_event(LOG_WARN, "%s: COMRESET", name);
		if (comreset(p) == 0 && same_identity(p))
			goto answered;
		at = RUNG_HBA;
	}
	log_event(LOG_WARN, "%s: HBA reset", name);
	int rc = hba_reset(p);
	if (rc == 0)
		goto answered;
	log_event(LOG_ERR, "%s: no answer as the same disk after the HBA reset (%s)", name, err_str(rc));
	return -E_GONE;

answered:
	log_event(LOG_INFO, "%s: answers as the same disk after the %s reset (%llu ms)", name,
		  rung_names[at], (unsigned long long)((time_now_us() - t0) / 1000));
	return 0;
}

/* Does a gone disk answer again as itself? Only port-level steps: a re-probe (every 2 s from a
 * waiting rescue job, or the hot-plug poller) must not reset the neighbours with GHC.HR. */
static int reprobe(struct ahci_port *p)
{
	if (!link_up(p))
		return -E_GONE;
	/* A drive still busy from before needs the COMRESET; port_bringup then waits for BSY to
	 * clear (1 s at most) and skips IDENTIFY when it does not. */
	if ((prd_rd(p, PxTFD) & (TFD_BSY | TFD_DRQ)) && comreset(p) < 0)
		return -E_GONE;
	int rc = port_bringup(p, 10);
	if (rc == 0 && !same_identity(p))
		rc = -E_IDENTITY;
	if (rc == -E_IDENTITY && !p->refused_logged) {
		log_event(LOG_WARN, "%s: the device on its port answers as another disk; still gone",
			  p->dev.name);
		p->refused_logged = true;
	}
	if (rc == 0)
		p->refused_logged = false;
	return rc < 0 ? -E_GONE : 0;
}

static int ahci_recover(struct blk_dev *d, struct blk_req *overdue)
{
	struct ahci_port *p = d->drv;
	drop_all(p);   /* the layer fails or re-issues what was in flight */
	if (!overdue)
		return reprobe(p);
	return ladder(p, RUNG_PORT);
}

/* SMART commands carry the key 4Fh/C2h in LBA mid/high; RETURN STATUS answers in the same
 * registers of the D2H FIS: unchanged when healthy, F4h/2Ch when a threshold is exceeded. */
#define SMART_KEY_LBA ((uint64_t)0xc24f << 8)

static int smart_health(struct ahci_port *p, int *failing, uint32_t timeout_ms)
{
	int rc = run_internal_feat(p, ATA_SMART, SMART_RETURN_STATUS, SMART_KEY_LBA, NULL, 0, timeout_ms);
	if (rc < 0)
		return rc;
	const uint8_t *d2h = p->fis + 0x40;
	rc = ata_smart_status(d2h[5], d2h[6]);
	if (rc < 0)
		return rc;
	*failing = rc;
	return 0;
}

/* SMART in words for a person (the verdict, and the counts of sectors the drive gave up on)
 * in h->words, and as two lines (the verdict, the attributes a rescue cares about) in health and
 * line, both asked within timeout_ms. -E_BUSY while the port has commands of its own in flight
 * (internal commands need it idle); a command that does not end in time is abandoned with a
 * port restart, so the port is idle again for the block layer. */
static int smart_text(struct ahci_port *p, char *health, char *line, int n, struct blk_health *h,
		      uint32_t timeout_ms)
{
	if (p->busy || p->ncq_mask || p->nredo)
		return -E_BUSY;
	deadline_t end = deadline_in_ms(timeout_ms);
	int failing = 0;
	int vrc = smart_health(p, &failing, timeout_ms);
	if (vrc == -E_TIMEOUT)
		port_recover_error(p);
	if (vrc < 0)
		fmt_snprintf(health, (size_t)n, "SMART health: unknown (%s)", err_str(vrc));
	else
		fmt_snprintf(health, (size_t)n, "SMART health: %s", failing ? "FAILING (threshold exceeded)" : "ok");
	struct ata_smart data;
	uint32_t left = deadline_left_ms(end);
	int rc = left ? run_internal_feat(p, ATA_SMART, SMART_READ_DATA, SMART_KEY_LBA, p->smart, 512, left)
		      : -E_TIMEOUT;
	if (rc == -E_TIMEOUT && left)
		port_recover_error(p);
	if (rc == 0)
		rc = ata_smart_parse(p->smart, &data);
	if (rc < 0)
		fmt_snprintf(line, (size_t)n, "SMART data: unreadable (%s)", err_str(rc));
	else
		ata_smart_summary(&data, line, (size_t)n);
	if (!h)
		return 0;
	if (vrc < 0 && rc < 0) {
		h->verdict = BLK_HEALTH_UNKNOWN;
		fmt_snprintf(h->words, sizeof(h->words), "SMART: not read (%s)", err_str(vrc));
		return vrc;
	}
	h->verdict = (enum blk_verdict)ata_smart_words(rc == 0 ? &data : NULL, vrc < 0 ? vrc : failing,
						       h->words, sizeof(h->words));
	return 0;
}

static void smart_show(struct ahci_port *p)
{
	char health[160], line[160];
	if (smart_text(p, health, line, sizeof(line), NULL, CMD_TIMEOUT_MS) < 0) {
		kprintf("SMART: port busy, try again\n");
		return;
	}
	kprintf("%s\n%s\n", health, line);
}

static int ahci_health(struct blk_dev *d, struct blk_health *h, uint32_t timeout_ms)
{
	struct ahci_port *p = d->drv;
	if (!(p->ident[82] & 1)) {
		h->verdict = BLK_HEALTH_UNKNOWN;
		fmt_snprintf(h->words, sizeof(h->words), "SMART: not supported by the drive");
		fmt_snprintf(h->detail, sizeof(h->detail), "SMART: not supported by the drive");
		return 0;
	}
	if (d->flags & BLK_F_GONE)
		return -E_GONE;
	char health[160], line[160];
	int rc = smart_text(p, health, line, sizeof(line), h, timeout_ms);
	if (rc == 0)
		fmt_snprintf(h->detail, sizeof(h->detail), "%s; %s", health, line);
	return rc;
}

static void ahci_info(struct blk_dev *d)
{
	struct ahci_port *p = d->drv;
	kprintf("ahci: pci %02x:%02x.%x port %u, firmware '%s', link %s, SMART %s, write cache %s, FUA %s\n",
		p->pci->bus, p->pci->dev, p->pci->fn, p->port, d->firmware,
		link_up(p) ? "up" : "down", p->id.smart ? "supported" : "no",
		p->id.cache_on ? "on" : "off", d->flags & BLK_F_FUA ? "yes" : "no");
	if (p->ncq_depth)
		kprintf("NCQ: depth %u, %s, most in flight %u, errors %llu (%u not repeated without NCQ)\n",
			p->ncq_depth, ncq_on(p) ? "on" : p->ncq_given_up ? "off (after NCQ-only errors)" :
			"off (sata-ncq setting)", p->ncq_most, (unsigned long long)p->ncq_errors,
			p->ncq_unexplained);
	else
		kprintf("NCQ: not supported by the %s\n", p->cap & CAP_SNCQ ? "drive" : "controller");
	if (p->id.smart && !(d->flags & BLK_F_GONE))
		smart_show(p);
}

static const struct blk_driver_ops ahci_ops = {
	.start = ahci_start, .poll = ahci_poll, .recover = ahci_recover, .info = ahci_info,
	.health = ahci_health,
};

static int port_init(struct ahci_ctrl *c, unsigned port)
{
	struct ahci_port *p = kzalloc(sizeof(*p));
	if (!p)
		return -E_NOMEM;
	struct pci_dev *pci = c->pci;
	volatile uint8_t *hba = c->hba;
	p->ctrl = c;
	p->pci = pci;
	p->hba = hba;
	p->port = port;
	p->cap = c->cap;
	p->regs = hba + 0x100 + 0x80 * port;
	int rc = -E_NOMEM;
	p->cl = dma_alloc(1024, 1024);
	p->fis = dma_alloc(256, 256);
	p->ct = dma_alloc(NSLOTS * CT_STRIDE, 128);
	p->ident = dma_alloc(512, 2);
	p->smart = dma_alloc(512, 2);
	if (!p->cl || !p->fis || !p->ct || !p->ident || !p->smart)
		goto free_bufs;
	rc = port_bringup(p, 50);   /* empty ports must not slow the boot down */
	if (rc < 0)
		goto stop;
	rc = -E_NOENT;
	if (prd_rd(p, PxSIG) != 0x00000101)   /* ATAPI or a port multiplier: not a disk */
		goto stop;
	char why[96];
	rc = identify(p, &p->dev, why, sizeof(why));
	if (rc < 0) {
		log_event(LOG_WARN, "ahci: pci %02x:%02x.%x port %u: %s: disk not used", pci->bus, pci->dev,
			  pci->fn, port, why);
		goto stop;
	}
	struct blk_dev *bd = &p->dev;
	fmt_snprintf(bd->name, sizeof(bd->name), "sata%d", nsata);
	bd->transport = "ahci";
	bd->ops = &ahci_ops;
	bd->drv = p;
	bd->max_sectors = MAX_BYTES / bd->lsize;
	if (bd->max_sectors > 65536)
		bd->max_sectors = 65536;
	bd->queue_depth = ncq_on(p) ? p->ncq_depth : 1;
	const struct boot_info *bi = boot_info_get();
	if (bi->boot_pci_bus == pci->bus && bi->boot_pci_dev == pci->dev && bi->boot_pci_fn == pci->fn &&
	    bi->boot_port == port)
		bd->flags |= BLK_F_BOOT;
	rc = blk_register(bd);
	if (rc < 0)
		goto stop;
	c->ports[port] = p;
	if (nports < sizeof(all_ports) / sizeof(all_ports[0]))
		all_ports[nports++] = p;
	nsata++;
	return 0;

stop:
	port_stop(p);
free_bufs:
	dma_free(p->smart, 512);
	dma_free(p->ident, 512);
	dma_free(p->ct, NSLOTS * CT_STRIDE);
	dma_free(p->fis, 256);
	dma_free(p->cl, 1024);
	kfree(p);
	return rc;
}

static bool ahci_match(const struct pci_dev *d)
{
	return d->class == 0x01 && d->subclass == 0x06 && d->progif == 0x01;
}

static int ahci_probe(struct pci_dev *pci)
{
	volatile uint8_t *hba = pci_bar_ptr(pci, 5);
	if (!hba)
		return -E_UNSUPP;
	pci_enable(pci, true, false, true);
	/* Take the controller from the firmware when it says it owns it (BIOS/OS handoff). */
	if (mmio_read32(hba + CAP2) & 1) {
		mmio_write32(hba + BOHC, mmio_read32(hba + BOHC) | 2);
		wait_bits32((volatile uint32_t *)(hba + BOHC), 1, 0, BIOS_HANDOFF_TIMEOUT_MS);
	}
	mmio_write32(hba + GHC, mmio_read32(hba + GHC) | GHC_AE);
	mmio_write32(hba + GHC, mmio_read32(hba + GHC) | GHC_HR);
	if (wait_bits32((volatile uint32_t *)(hba + GHC), GHC_HR, 0, HBA_RESET_TIMEOUT_MS) < 0)
		return -E_TIMEOUT;
	mmio_write32(hba + GHC, GHC_AE);
	uint32_t cap = mmio_read32(hba + CAP), pi = mmio_read32(hba + PI);
	struct ahci_ctrl *c = kzalloc(sizeof(*c));
	if (!c)
		return -E_NOMEM;
	c->pci = pci;
	c->hba = hba;
	c->cap = cap;
	int found = 0;
	for (unsigned port = 0; port < 32; port++)
		if ((pi & (1u << port)) && port_init(c, port) == 0)
			found++;
	log_event(LOG_INFO, "ahci %02x:%02x.%x: %d disk(s) on %u ports", pci->bus, pci->dev, pci->fn,
		  found, (cap & 0x1f) + 1);
	return 0;
}
PCI_DRIVER(ahci, "ahci", ahci_match, ahci_probe);

/* `sata reset`: climbs the ladder from a chosen rung on a healthy disk, for the operator (a disk
 * that misbehaves without timing out) and for the tests (QEMU never needs the higher rungs). */
static int cmd_sata(int argc, char **argv)
{
	if (argc < 3 || argc > 4 || strcmp(argv[1], "reset"))
		return -E_USAGE;
	struct blk_dev *d = blk_find(argv[2]);
	if (!d)
		return -E_NOENT;
	if (d->parent)
		d = d->parent;
	if (d->ops != &ahci_ops) {
		kprintf("%s is not a SATA disk\n", d->name);
		return -E_INVAL;
	}
	enum rung from = RUNG_PORT;
	if (argc == 4) {
		for (from = RUNG_PORT; from <= RUNG_HBA; from++)
			if (!strcmp(argv[3], rung_names[from]))
				break;
		if (from > RUNG_HBA)
			return -E_USAGE;
	}
	if (d->flags & BLK_F_GONE) {
		kprintf("%s is gone\n", d->name);
		return -E_GONE;
	}
	struct ahci_port *p = d->drv;
	uint64_t t0 = time_now_us();
	requeue_all(p);
	int rc = ladder(p, from);
	if (rc < 0) {
		drop_all(p);
		blk_set_gone(d);
		kprintf("%s: %s after the reset\n", d->name, err_str(rc));
		return rc;
	}
	next_redo(p);
	kprintf("%s: same identity after the %s reset (%llu ms)\n", d->name, rung_names[from],
		(unsigned long long)((time_now_us() - t0) / 1000));
	return 0;
}
COMMAND(sata, "sata reset <disk> [port|comreset|hba]",
	"reset a SATA disk from a rung of the ladder; IDENTIFY must answer with the same identity", NULL,
	cmd_sata);

/* Follows the sata-ncq setting: the block layer hands each disk as many commands as it takes. */
static void ahci_depth_poll(void)
{
	for (unsigned i = 0; i < nports; i++) {
		struct ahci_port *p = all_ports[i];
		p->dev.queue_depth = ncq_on(p) ? p->ncq_depth : 1;
	}
}
POLLER(ahci_depth, ahci_depth_poll);

/* Hot-plug: a port whose link drops (SSTS.DET, PxIS.PCS/PRCS) makes its disk gone; a gone
 * disk whose link is up again is re-probed and returns (new instance) only with the same
 * identity. A link that changed but stayed up (a fast swap) is re-identified at once. */
static void ahci_hotplug_poll(void)
{
	static deadline_t next;
	static unsigned ticks;
	if (!deadline_passed(next))
		return;
	next = deadline_in_ms(250);
	ticks++;
	for (unsigned i = 0; i < nports; i++) {
		struct ahci_port *p = all_ports[i];
		struct blk_dev *d = &p->dev;
		if (d->flags & BLK_F_GONE) {
			if (ticks % 8 == 0 && link_up(p) && reprobe(p) == 0)
				blk_set_returned(d);
			continue;
		}
		uint32_t is = prd_rd(p, PxIS);
		if (link_up(p) && !(is & (IS_PCS | IS_PRCS)))
			continue;
		if (!link_up(p)) {
			log_event(LOG_WARN, "%s: link lost (SSTS 0x%x)", d->name, prd_rd(p, PxSSTS));
			drop_all(p);
			blk_set_gone(d);
			continue;
		}
		log_event(LOG_WARN, "%s: link changed, checking the identity", d->name);
		requeue_all(p);
		if (port_bringup(p, 10) == 0 && same_identity(p)) {
			next_redo(p);
			continue;
		}
		drop_all(p);
		blk_set_gone(d);
	}
}
POLLER(ahci_hotplug, ahci_hotplug_poll);
