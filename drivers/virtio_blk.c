/* virtio-blk over PCI, modern (virtio 1.0+, capability-mapped registers) or legacy (I/O port
 * registers, 0.9.5): one split virtqueue, many requests in flight, completions reaped by polling
 * the used ring. Recovery is a device reset and re-init. */
#include "blk.h"
#include "virtio.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/pci.h"
#include "../kernel/time.h"

/* Feature bits. */
#define F_SIZE_MAX   (1ULL << 1)
#define F_SEG_MAX    (1ULL << 2)
#define F_RO         (1ULL << 5)
#define F_BLK_SIZE   (1ULL << 6)
#define F_FLUSH      (1ULL << 9)
#define F_TOPOLOGY   (1ULL << 10)
#define F_DISCARD    (1ULL << 13)
#define F_WRITE_ZEROES (1ULL << 14)

#define GET_ID_TIMEOUT_MS  1000   /* the serial (GET_ID) at probe */
#define ZERO_MAX_BYTES  (64u << 20)  /* a discard or write-zeroes command: no data, so larger */
/* Request types and status. */
enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WRITE_ZEROES = 13 };
enum { ST_OK = 0, ST_IOERR = 1, ST_UNSUPP = 2 };

/* The device configuration: where the fields read below are. */
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

/* The device configuration bytes read: up to phys_exp (capacity, size_max, blk_size, topology). */
#define CFG_READ_BYTES (offsetof(struct blk_cfg, phys_exp) + 1)
/* The discard and write-zeroes limits (max_discard_sectors at 36 to write_zeroes_may_unmap at
 * 56) are read only when the window holds them, and only then are those features taken. */
#define CFG_ZERO_BYTES 57u

struct req_hdr { uint32_t type, reserved; uint64_t sector; };
/* The data of a discard or write-zeroes request: one range, in 512-byte sectors; flags 0 (for
 * write-zeroes: no unmap, the zeros stay allocated). */
struct zero_seg { uint64_t sector; uint32_t num_sectors, flags; };

#define SLOTS (VIRTIO_QSIZE_MAX / 3)

struct vblk {
	struct blk_dev dev;
	struct virtio_dev vio;
	struct virtq q;                /* queue 0: three descriptors a request */
	struct req_hdr *hdrs;          /* one per slot, DMA */
	struct zero_seg *segs;         /* one per slot, DMA: discard and write-zeroes ranges */
	volatile uint8_t *status;      /* one byte per slot, DMA */
	struct blk_req *slot_req[SLOTS];
	uint32_t nslots;
};

static int nvblk;

static uint64_t cfg_capacity(struct vblk *v)
{
	return (uint64_t)virtio_cfg32(&v->vio, 0) | (uint64_t)virtio_cfg32(&v->vio, 4) << 32;
}

/* Reset, negotiate, set up queue 0 and the request slots, DRIVER_OK. Probe and recovery. */
static int vblk_init_device(struct vblk *v)
{
	uint64_t want = F_BLK_SIZE | F_FLUSH | F_RO | F_SEG_MAX | F_SIZE_MAX | F_TOPOLOGY;
	if (v->vio.cfg_len >= CFG_ZERO_BYTES)
		want |= F_DISCARD | F_WRITE_ZEROES;
	int rc = virtio_begin(&v->vio, want);
	if (rc == 0)
		rc = virtio_queue_setup(&v->vio, &v->q, 0, 3);
	if (rc < 0)
		return rc;
	if (!v->hdrs) {
		v->hdrs = dma_alloc(sizeof(struct req_hdr) * SLOTS, 16);
		v->segs = dma_alloc(sizeof(struct zero_seg) * SLOTS, 16);
		v->status = dma_alloc(SLOTS, 1);
		if (!v->hdrs || !v->segs || !v->status)
			return -E_NOMEM;
	}
	v->nslots = v->q.size / 3 < SLOTS ? v->q.size / 3 : SLOTS;
	memset(v->slot_req, 0, sizeof(v->slot_req));
	return virtio_ready(&v->vio);
}

/* Queues one request as header + data + status descriptors in slot s. */
static void queue_req(struct vblk *v, uint32_t s, uint32_t type, uint64_t sector, void *buf,
		      uint32_t len, int device_writes)
{
	uint16_t d0 = (uint16_t)(3 * s);
	v->hdrs[s] = (struct req_hdr){ type, 0, sector };
	v->status[s] = 0xff;
	struct virtq_desc *desc = v->q.desc;
	desc[d0] = (struct virtq_desc){ dma_addr(&v->hdrs[s]), sizeof(struct req_hdr), VIRTQ_DESC_F_NEXT,
					(uint16_t)(d0 + 1) };
	if (len)
		desc[d0 + 1] = (struct virtq_desc){ dma_addr(buf), len,
			(uint16_t)(VIRTQ_DESC_F_NEXT | (device_writes ? VIRTQ_DESC_F_WRITE : 0)), (uint16_t)(d0 + 2) };
	else
		desc[d0].next = (uint16_t)(d0 + 2);
	desc[d0 + 2] = (struct virtq_desc){ dma_addr((const void *)&v->status[s]), 1, VIRTQ_DESC_F_WRITE, 0 };
	virtq_post(&v->q, d0);
	virtq_kick(&v->vio, &v->q);
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
	for (uint32_t id; virtq_next_used(&v->q, &id, NULL);) {
		uint32_t s = id / 3;
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
		v->vio.pci->bus, v->vio.pci->dev, v->vio.pci->fn, (unsigned long long)v->vio.features,
		v->vio.features & F_FLUSH ? " flush" : "", v->vio.features & F_RO ? " ro" : "",
		v->vio.features & F_TOPOLOGY ? " topology" : "", v->vio.features & F_DISCARD ? " discard" : "",
		v->vio.features & F_WRITE_ZEROES ? " write-zeroes" : "", v->q.size, v->nslots);
}

static const struct blk_driver_ops vblk_ops = {
	.start = vblk_start, .poll = vblk_poll, .recover = vblk_recover, .info = vblk_info,
};

/* GET_ID at probe time: the serial, up to 20 bytes, NUL-padded. */
static bool used_moved(void *ctx)
{
	struct vblk *v = ctx;
	return virtq_has_used(&v->q);
}

static void vblk_get_serial(struct vblk *v)
{
	char *id = dma_alloc(64, 16);
	if (!id)
		return;
	struct blk_req r = { .op = 0xff };
	v->slot_req[0] = &r;
	queue_req(v, 0, T_GET_ID, 0, id, 20, 1);
	uint32_t used;
	if (wait_until(used_moved, v, GET_ID_TIMEOUT_MS) == 0 && virtq_next_used(&v->q, &used, NULL)) {
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
	uint32_t disc = (v->vio.features & F_DISCARD) ? virtio_cfg32(&v->vio, 36) / per : 0;
	uint32_t zero = (v->vio.features & F_WRITE_ZEROES) ? virtio_cfg32(&v->vio, 48) / per : 0;
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
	int rc = virtio_find(&v->vio, p, "virtio-blk", CFG_READ_BYTES);
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
	uint32_t blk_size = virtio_cfg32(&v->vio, offsetof(struct blk_cfg, blk_size));
	d->lsize = 512;
	if ((v->vio.features & F_BLK_SIZE) && blk_size != 512) {
		if (blk_size >= 512 && blk_size <= 65536 && !(blk_size & (blk_size - 1)))
			d->lsize = blk_size;
		else
			log_event(LOG_WARN, "%s: block size %u is not a sector size, 512 used", d->name, blk_size);
	}
	uint8_t phys_exp = 0;
	if (v->vio.features & F_TOPOLOGY)
		phys_exp = virtio_cfg8(&v->vio, offsetof(struct blk_cfg, phys_exp));
	d->psize = phys_exp <= 7 ? d->lsize << phys_exp : d->lsize;   /* beyond 2^7: noise */
	d->sectors = cfg_capacity(v) / (d->lsize / 512);
	fmt_snprintf(d->model, sizeof(d->model), v->vio.io ? "virtio-blk (legacy)" : "virtio-blk");
	/* One data descriptor per request: bounded by SIZE_MAX, and 1 MiB at most. */
	uint32_t max_bytes = 1u << 20;
	uint32_t size_max = virtio_cfg32(&v->vio, offsetof(struct blk_cfg, size_max));
	if ((v->vio.features & F_SIZE_MAX) && size_max && size_max < max_bytes)
		max_bytes = size_max;
	d->max_sectors = max_bytes / d->lsize ? max_bytes / d->lsize : 1;
	d->queue_depth = v->nslots;
	if (v->vio.features & F_RO)
		d->flags |= BLK_F_DEV_RO;
	if (v->vio.features & F_FLUSH)
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
	virtio_reset(&v->vio);
free_v:
	kfree(v);
	return rc;
}
PCI_DRIVER(virtio_blk, "virtio-blk", vblk_match, vblk_probe);
