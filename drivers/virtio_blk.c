/* virtio-blk over PCI, modern (virtio 1.0+, capability-mapped registers) or legacy (I/O port
 * registers, 0.9.5): one split virtqueue, many requests in flight, completions reaped by polling
 * the used ring. Recovery is a device reset and re-init. */
#include "blk.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/io.h"
#include "../lib/pci_caps.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/pci.h"
#include "../kernel/time.h"

/* PCI capability types (virtio 1.x, 4.1.4). */
enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4 };
/* Device status bits. */
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_FAILED = 128 };
/* Feature bits. */
#define F_SIZE_MAX   (1ULL << 1)
#define F_SEG_MAX    (1ULL << 2)
#define F_RO         (1ULL << 5)
#define F_BLK_SIZE   (1ULL << 6)
#define F_FLUSH      (1ULL << 9)
#define F_TOPOLOGY   (1ULL << 10)
#define F_DISCARD    (1ULL << 13)
#define F_WRITE_ZEROES (1ULL << 14)
#define F_VERSION_1  (1ULL << 32)

#define RESET_TIMEOUT_MS   1000   /* the status to read back zero after a reset */
#define GET_ID_TIMEOUT_MS  1000   /* the serial (GET_ID) at probe */
#define ZERO_MAX_BYTES  (64u << 20)  /* a discard or write-zeroes command: no data, so larger */
/* Request types and status. */
enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WRITE_ZEROES = 13 };
enum { ST_OK = 0, ST_IOERR = 1, ST_UNSUPP = 2 };

struct common_cfg {
	uint32_t dfselect, df, gfselect, gf;
	uint16_t msix, numq;
	uint8_t status, cfggen;
	uint16_t qselect, qsize, qmsix, qenable, qnotify_off;
	uint64_t qdesc, qavail, qused;
} __attribute__((packed));

struct blk_cfg {
	uint64_t capacity;
	uint32_t size_max, seg_max;
	uint16_t cylinders;
	uint8_t heads, sectors;
	uint32_t blk_size;
	uint8_t phys_exp, align_off;
	uint16_t min_io;
	uint32_t opt_io;
} __attribute__((packed));

/* The device configuration bytes read: up to phys_exp (capacity, size_max, blk_size, topology);
 * the discard and write-zeroes limits (max_discard_sectors at 36 to write_zeroes_may_unmap at
 * 56) only when the window holds them, and only then are those features taken. */
#define CFG_READ_BYTES 25u
#define CFG_ZERO_BYTES 57u

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
#define D_NEXT  1
#define D_WRITE 2

struct req_hdr { uint32_t type, reserved; uint64_t sector; };
/* The data of a discard or write-zeroes request: one range, in 512-byte sectors; flags 0 (for
 * write-zeroes: no unmap, the zeros stay allocated). */
struct zero_seg { uint64_t sector; uint32_t num_sectors, flags; };

#define QSIZE_MAX 256
#define SLOTS (QSIZE_MAX / 3)
/* Legacy I/O registers (BAR0). */
enum { L_HOST_FEATURES = 0x00, L_GUEST_FEATURES = 0x04, L_QUEUE_PFN = 0x08, L_QUEUE_SIZE = 0x0c,
       L_QUEUE_SELECT = 0x0e, L_QUEUE_NOTIFY = 0x10, L_STATUS = 0x12, L_CONFIG = 0x14 };

struct vblk {
	struct blk_dev dev;
	struct pci_dev *pci;
	volatile struct common_cfg *common;
	volatile struct blk_cfg *cfg;
	uint32_t cfg_len;              /* bytes of device configuration that may be read */
	volatile uint8_t *notify_base;
	uint32_t notify_mult, notify_len;
	volatile uint16_t *notify;     /* queue 0's doorbell */
	volatile uint8_t *isr;
	uint16_t io;                   /* legacy: the I/O port base; 0 for a modern device */
	void *ring;                    /* desc, avail, used: one block in the legacy layout */
	uint64_t features;
	uint16_t qsize, last_used, avail_idx;
	struct desc *desc;
	volatile uint16_t *avail;      /* flags, idx, ring[qsize] */
	volatile uint8_t *used;        /* flags, idx, ring of {id, len} */
	struct req_hdr *hdrs;          /* one per slot, DMA */
	struct zero_seg *segs;         /* one per slot, DMA: discard and write-zeroes ranges */
	volatile uint8_t *status;      /* one byte per slot, DMA */
	struct blk_req *slot_req[SLOTS];
	uint32_t nslots;
};

static int nvblk;

/* The structure a vendor capability points at, when `need` bytes of it lie inside both the
 * capability's length and its BAR: a window past the BAR would be someone else's MMIO. */
static void *cap_ptr(struct pci_dev *p, uint8_t cap, uint32_t need, uint32_t *len_out)
{
	uint8_t bar = pci_read8(p, cap + 4);
	uint32_t off = pci_read32(p, cap + 8), len = pci_read32(p, cap + 12);
	volatile uint8_t *base = pci_bar_ptr(p, bar);
	if (!base || !pci_cap_window_ok(p->bar_size[bar], off, len, need)) {
		log_event(LOG_WARN, "virtio-blk: pci %02x:%02x.%x: capability at 0x%02x (type %u) describes "
			  "%u bytes at 0x%x of BAR %u, not its %u: ignored", p->bus, p->dev, p->fn, cap,
			  pci_read8(p, cap + 3), len, off, bar, need);
		return NULL;
	}
	if (len_out)
		*len_out = len;
	return (void *)(base + off);
}

static int find_caps(struct vblk *v)
{
	for (uint8_t cap = pci_find_cap(v->pci, 0x09, 0); cap; cap = pci_find_cap(v->pci, 0x09, cap)) {
		uint8_t type = pci_read8(v->pci, cap + 3);
		if (type == CAP_COMMON && !v->common)
			v->common = cap_ptr(v->pci, cap, sizeof(struct common_cfg), NULL);
		else if (type == CAP_NOTIFY && !v->notify_base) {
			v->notify_base = cap_ptr(v->pci, cap, 2, &v->notify_len);
			v->notify_mult = pci_read32(v->pci, cap + 16);
		} else if (type == CAP_ISR && !v->isr)
			v->isr = cap_ptr(v->pci, cap, 1, NULL);
		else if (type == CAP_DEVICE && !v->cfg)
			v->cfg = cap_ptr(v->pci, cap, CFG_READ_BYTES, &v->cfg_len);
	}
	if (!v->common || !v->notify_base || !v->cfg)
		return -E_UNSUPP;   /* a legacy-only device: not driven */
	return 0;
}

/* The few transport differences between modern and legacy devices. */
static uint8_t get_status(struct vblk *v)
{
	return v->io ? inb(v->io + L_STATUS) : v->common->status;
}

static void set_status(struct vblk *v, uint8_t st)
{
	if (v->io)
		outb(v->io + L_STATUS, st);
	else
		v->common->status = st;
}

static uint32_t cfg32(struct vblk *v, unsigned off)
{
	return v->io ? inl((uint16_t)(v->io + L_CONFIG + off)) : *(volatile uint32_t *)((volatile uint8_t *)v->cfg + off);
}

static uint64_t cfg_capacity(struct vblk *v)
{
	return (uint64_t)cfg32(v, 0) | (uint64_t)cfg32(v, 4) << 32;
}

static uint8_t cfg8(struct vblk *v, unsigned off)
{
	return v->io ? inb((uint16_t)(v->io + L_CONFIG + off)) : ((volatile uint8_t *)v->cfg)[off];
}

static void notify(struct vblk *v)
{
	if (v->io)
		outw(v->io + L_QUEUE_NOTIFY, 0);
	else
		*v->notify = 0;
}

static bool status_zero(void *v)
{
	return get_status(v) == 0;
}

/* A device reset completes when the status reads back zero. */
static int wait_status_zero(struct vblk *v)
{
	return wait_until(status_zero, v, RESET_TIMEOUT_MS);
}

/* The ring in the legacy layout (also valid for modern devices): descriptors, the available
 * ring, then the used ring on the next 4 KiB boundary. */
static uint64_t ring_bytes(uint16_t qs)
{
	uint64_t used_off = (16ULL * qs + 6 + 2ULL * qs + 4095) & ~4095ULL;
	return used_off + ((6 + 8ULL * qs + 4095) & ~4095ULL);
}

static int ring_setup(struct vblk *v, uint16_t qs)
{
	if (!v->ring) {
		v->ring = dma_alloc(ring_bytes(qs), 4096);
		v->hdrs = dma_alloc(sizeof(struct req_hdr) * SLOTS, 16);
		v->segs = dma_alloc(sizeof(struct zero_seg) * SLOTS, 16);
		v->status = dma_alloc(SLOTS, 1);
		if (!v->ring || !v->hdrs || !v->segs || !v->status)
			return -E_NOMEM;
	}
	v->qsize = qs;
	memset(v->ring, 0, ring_bytes(qs));
	v->desc = v->ring;
	v->avail = (volatile uint16_t *)((uint8_t *)v->ring + 16ULL * qs);
	v->used = (volatile uint8_t *)v->ring + ((16ULL * qs + 6 + 2ULL * qs + 4095) & ~4095ULL);
	v->last_used = v->avail_idx = 0;
	v->nslots = qs / 3 < SLOTS ? qs / 3 : SLOTS;
	memset(v->slot_req, 0, sizeof(v->slot_req));
	return 0;
}

/* Legacy devices: reset, 32 feature bits, the device's own queue size, the ring by page number. */
static int vblk_init_legacy(struct vblk *v)
{
	set_status(v, 0);
	if (wait_status_zero(v) < 0)
		return -E_TIMEOUT;
	set_status(v, S_ACK);
	set_status(v, S_ACK | S_DRIVER);
	uint64_t want = F_BLK_SIZE | F_FLUSH | F_RO | F_SEG_MAX | F_SIZE_MAX | F_TOPOLOGY;
	if (v->cfg_len >= CFG_ZERO_BYTES)
		want |= F_DISCARD | F_WRITE_ZEROES;
	v->features = inl(v->io + L_HOST_FEATURES) & want;
	outl(v->io + L_GUEST_FEATURES, (uint32_t)v->features);
	outw(v->io + L_QUEUE_SELECT, 0);
	uint16_t qs = inw(v->io + L_QUEUE_SIZE);
	if (qs < 3 || qs > QSIZE_MAX || (qs & (qs - 1)))
		return -E_UNSUPP;   /* the legacy ring size cannot be changed by the driver */
	int rc = ring_setup(v, qs);
	if (rc < 0)
		return rc;
	outl(v->io + L_QUEUE_PFN, (uint32_t)(dma_addr(v->ring) >> 12));
	set_status(v, S_ACK | S_DRIVER | S_DRIVER_OK);
	return get_status(v) & S_FAILED ? -E_DEVICE : 0;
}

/* Reset, negotiate, set up queue 0, DRIVER_OK. Used at probe and as the recovery step. */
static int vblk_init_device(struct vblk *v)
{
	if (v->io)
		return vblk_init_legacy(v);
	volatile struct common_cfg *c = v->common;
	c->status = 0;
	if (wait_status_zero(v) < 0)
		return -E_TIMEOUT;
	c->status = S_ACK;
	c->status = S_ACK | S_DRIVER;
	c->dfselect = 0;
	uint64_t f = c->df;
	c->dfselect = 1;
	f |= (uint64_t)c->df << 32;
	uint64_t want = F_VERSION_1 | F_BLK_SIZE | F_FLUSH | F_RO | F_SEG_MAX | F_SIZE_MAX | F_TOPOLOGY;
	if (v->cfg_len >= CFG_ZERO_BYTES)
		want |= F_DISCARD | F_WRITE_ZEROES;
	v->features = f & want;
	if (!(v->features & F_VERSION_1))
		return -E_UNSUPP;
	c->gfselect = 0;
	c->gf = (uint32_t)v->features;
	c->gfselect = 1;
	c->gf = (uint32_t)(v->features >> 32);
	c->status = S_ACK | S_DRIVER | S_FEATURES_OK;
	if (!(c->status & S_FEATURES_OK))
		return -E_UNSUPP;

	c->qselect = 0;
	uint16_t qs = c->qsize;
	if (qs < 3)
		return -E_UNSUPP;
	if (qs > QSIZE_MAX)
		qs = QSIZE_MAX;
	int rc = ring_setup(v, qs);
	if (rc < 0)
		return rc;
	c->qsize = v->qsize;
	c->qdesc = dma_addr(v->desc);
	c->qavail = dma_addr((const void *)v->avail);
	c->qused = dma_addr((const void *)v->used);
	uint64_t at = (uint64_t)c->qnotify_off * v->notify_mult;
	if (at + 2 > v->notify_len) {
		log_event(LOG_WARN, "virtio-blk: queue 0's doorbell at %llu is past the %u-byte notify window",
			  (unsigned long long)at, v->notify_len);
		return -E_DEVICE;
	}
	v->notify = (volatile uint16_t *)(v->notify_base + at);
	c->qenable = 1;
	c->status = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
	if (c->status & S_FAILED)
		return -E_DEVICE;
	return 0;
}

static volatile uint16_t *used_idx(struct vblk *v)
{
	return (volatile uint16_t *)(v->used + 2);
}

/* Queues one request as header + data + status descriptors in slot s. */
static void queue_req(struct vblk *v, uint32_t s, uint32_t type, uint64_t sector, void *buf,
		      uint32_t len, int device_writes)
{
	uint16_t d0 = (uint16_t)(3 * s);
	v->hdrs[s] = (struct req_hdr){ type, 0, sector };
	v->status[s] = 0xff;
	v->desc[d0] = (struct desc){ dma_addr(&v->hdrs[s]), sizeof(struct req_hdr), D_NEXT, (uint16_t)(d0 + 1) };
	if (len)
		v->desc[d0 + 1] = (struct desc){ dma_addr(buf), len,
			(uint16_t)(D_NEXT | (device_writes ? D_WRITE : 0)), (uint16_t)(d0 + 2) };
	else
		v->desc[d0].next = (uint16_t)(d0 + 2);
	v->desc[d0 + 2] = (struct desc){ dma_addr((const void *)&v->status[s]), 1, D_WRITE, 0 };
	v->avail[2 + v->avail_idx % v->qsize] = d0;
	__asm__ __volatile__("" ::: "memory");   /* ring entry before the index (x86: stores in order) */
	v->avail_idx++;
	v->avail[1] = v->avail_idx;
	mmio_barrier();
	notify(v);
}

static int vblk_start(struct blk_dev *d, struct blk_req *r)
{
	struct vblk *v = d->drv;
	uint32_t s;
	for (s = 0; s < v->nslots && v->slot_req[s]; s++)
		;
	if (s == v->nslots)
		return -E_BUSY;
	v->slot_req[s] = r;
	r->drv_tag = s;
	uint64_t sector = r->lba * (d->lsize / 512);
	uint32_t len = r->count * d->lsize;
	if (r->op == BLK_READ)
		queue_req(v, s, T_IN, sector, r->buf, len, 1);
	else if (r->op == BLK_WRITE)
		queue_req(v, s, T_OUT, sector, r->buf, len, 0);
	else if (r->op == BLK_DISCARD || r->op == BLK_WRITE_ZEROES) {
		v->segs[s] = (struct zero_seg){ sector, r->count * (d->lsize / 512), 0 };
		queue_req(v, s, r->op == BLK_DISCARD ? T_DISCARD : T_WRITE_ZEROES, 0, &v->segs[s],
			  sizeof(struct zero_seg), 0);
	} else
		queue_req(v, s, T_FLUSH, 0, NULL, 0, 0);
	return 0;
}

static void vblk_poll(struct blk_dev *d)
{
	struct vblk *v = d->drv;
	while (v->last_used != *used_idx(v)) {
		__asm__ __volatile__("" ::: "memory");
		volatile uint32_t *elem = (volatile uint32_t *)(v->used + 4 + 8 * (v->last_used % v->qsize));
		uint32_t s = elem[0] / 3;
		v->last_used++;
		if (s >= v->nslots || !v->slot_req[s])
			continue;
		struct blk_req *r = v->slot_req[s];
		v->slot_req[s] = NULL;
		uint8_t st = v->status[s];
		/* virtio names no failing sector: report the request's first LBA as the bound. */
		int rc = st == ST_OK ? 0 : st == ST_UNSUPP ? -E_UNSUPP : r->op == BLK_READ ? -E_MEDIUM : -E_IO;
		blk_complete(d, r, rc, rc ? r->lba : BLK_NO_LBA);
	}
}

static int vblk_recover(struct blk_dev *d, struct blk_req *overdue)
{
	struct vblk *v = d->drv;
	(void)overdue;
	log_event(LOG_WARN, "%s: resetting the virtio device", d->name);
	int rc = vblk_init_device(v);
	if (rc < 0)
		log_event(LOG_ERR, "%s: re-initialisation failed: %s", d->name, err_str(rc));
	return rc < 0 ? -E_GONE : 0;
}

static void vblk_info(struct blk_dev *d)
{
	struct vblk *v = d->drv;
	kprintf("virtio: pci %02x:%02x.%x, features 0x%llx%s%s%s%s%s, queue size %u (%u requests in flight)\n",
		v->pci->bus, v->pci->dev, v->pci->fn, (unsigned long long)v->features,
		v->features & F_FLUSH ? " flush" : "", v->features & F_RO ? " ro" : "",
		v->features & F_TOPOLOGY ? " topology" : "", v->features & F_DISCARD ? " discard" : "",
		v->features & F_WRITE_ZEROES ? " write-zeroes" : "", v->qsize, v->nslots);
}

static const struct blk_driver_ops vblk_ops = {
	.start = vblk_start, .poll = vblk_poll, .recover = vblk_recover, .info = vblk_info,
};

/* GET_ID at probe time: the serial, up to 20 bytes, NUL-padded. */
static bool used_moved(void *ctx)
{
	struct vblk *v = ctx;
	return v->last_used != *used_idx(v);
}

static void vblk_get_serial(struct vblk *v)
{
	char *id = dma_alloc(64, 16);
	if (!id)
		return;
	struct blk_req r = { .op = 0xff };
	v->slot_req[0] = &r;
	queue_req(v, 0, T_GET_ID, 0, id, 20, 1);
	if (wait_until(used_moved, v, GET_ID_TIMEOUT_MS) == 0) {
		v->last_used++;
		if (v->status[0] == ST_OK)
			for (int i = 0; i < 20 && id[i]; i++)
				v->dev.serial[i] = id[i] >= 0x20 && id[i] < 0x7f ? id[i] : '?';
	}
	v->slot_req[0] = NULL;
	dma_free(id, 64);
}

/* Discard and write-zeroes as the block layer's no-data commands, within the device's limits
 * (512-byte sectors) and ours; a limit of zero leaves the command unused. */
static void vblk_zero_limits(struct vblk *v)
{
	struct blk_dev *d = &v->dev;
	uint32_t per = d->lsize / 512, max = ZERO_MAX_BYTES / d->lsize;
	uint32_t disc = (v->features & F_DISCARD) ? cfg32(v, 36) / per : 0;
	uint32_t zero = (v->features & F_WRITE_ZEROES) ? cfg32(v, 48) / per : 0;
	if (disc)
		d->flags |= BLK_F_DISCARD;
	if (zero)
		d->flags |= BLK_F_ZEROES;
	if (disc && disc < max)
		max = disc;
	if (zero && zero < max)
		max = zero;
	d->max_zero_sectors = max;
}

static bool vblk_match(const struct pci_dev *p)
{
	return p->vendor == 0x1af4 && (p->device == 0x1001 || p->device == 0x1042);
}

static int vblk_probe(struct pci_dev *p)
{
	struct vblk *v = kzalloc(sizeof(*v));
	if (!v)
		return -E_NOMEM;
	v->pci = p;
	pci_enable(p, true, true, true);
	int rc = find_caps(v);
	if (rc == -E_UNSUPP && p->bar_is_io[0] && p->bar[0]) {
		v->io = (uint16_t)p->bar[0];   /* no virtio capabilities: the legacy interface */
		v->cfg_len = p->bar_size[0] > L_CONFIG ? (uint32_t)p->bar_size[0] - L_CONFIG : 0;
		rc = 0;
	}
	if (rc < 0)
		goto free_v;
	v->dev.drv = v;
	rc = vblk_init_device(v);
	if (rc < 0)
		goto reset;
	struct blk_dev *d = &v->dev;
	fmt_snprintf(d->name, sizeof(d->name), "vd%d", nvblk);
	d->transport = "virtio";
	d->ops = &vblk_ops;
	uint32_t blk_size = cfg32(v, 20);
	d->lsize = 512;
	if ((v->features & F_BLK_SIZE) && blk_size != 512) {
		if (blk_size >= 512 && blk_size <= 65536 && !(blk_size & (blk_size - 1)))
			d->lsize = blk_size;
		else
			log_event(LOG_WARN, "%s: block size %u is not a sector size, 512 used", d->name, blk_size);
	}
	uint8_t phys_exp = (v->features & F_TOPOLOGY) ? cfg8(v, 24) : 0;
	d->psize = phys_exp <= 7 ? d->lsize << phys_exp : d->lsize;   /* beyond 2^7: noise */
	d->sectors = cfg_capacity(v) / (d->lsize / 512);
	fmt_snprintf(d->model, sizeof(d->model), v->io ? "virtio-blk (legacy)" : "virtio-blk");
	/* One data descriptor per request: bounded by SIZE_MAX, and 1 MiB at most. */
	uint32_t max_bytes = 1u << 20;
	uint32_t size_max = cfg32(v, 8);
	if ((v->features & F_SIZE_MAX) && size_max && size_max < max_bytes)
		max_bytes = size_max;
	d->max_sectors = max_bytes / d->lsize ? max_bytes / d->lsize : 1;
	d->queue_depth = v->nslots;
	if (v->features & F_RO)
		d->flags |= BLK_F_DEV_RO;
	if (v->features & F_FLUSH)
		d->flags |= BLK_F_FLUSH;
	vblk_zero_limits(v);
	const struct boot_info *bi = boot_info_get();
	if (bi->boot_pci_bus == p->bus && bi->boot_pci_dev == p->dev && bi->boot_pci_fn == p->fn)
		d->flags |= BLK_F_BOOT;
	vblk_get_serial(v);
	rc = blk_register(d);
	if (rc < 0)
		goto reset;
	nvblk++;
	return 0;

reset:
	set_status(v, 0);
free_v:
	kfree(v);
	return rc;
}
PCI_DRIVER(virtio_blk, "virtio-blk", vblk_match, vblk_probe);
