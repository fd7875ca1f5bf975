/* The virtio PCI transport, modern (virtio 1.0+, capability-mapped registers) and legacy (I/O
 * port registers, 0.9.5): what virtio-blk and virtio-net share below their own requests. */
#include "virtio.h"
#include "../kernel/io.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/time.h"
#include "../lib/errors.h"
#include "../lib/pci_caps.h"

#define VIRTIO_RESET_TIMEOUT_MS 1000u   /* the status to read back zero after a reset */

/* PCI capability types (virtio 1.x, 4.1.4). */
enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4 };
/* Device status bits. */
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_FAILED = 128 };
/* Legacy I/O registers (BAR0). */
enum { L_HOST_FEATURES = 0x00, L_GUEST_FEATURES = 0x04, L_QUEUE_PFN = 0x08, L_QUEUE_SIZE = 0x0c,
       L_QUEUE_SELECT = 0x0e, L_QUEUE_NOTIFY = 0x10, L_STATUS = 0x12, L_CONFIG = 0x14 };

struct virtio_common_cfg {
	uint32_t dfselect, df, gfselect, gf;
	uint16_t msix, numq;
	uint8_t status, cfggen;
	uint16_t qselect, qsize, qmsix, qenable, qnotify_off;
	uint64_t qdesc, qavail, qused;
} __attribute__((packed));

/* The structure a vendor capability points at, when `need` bytes of it lie inside both the
 * capability's length and its BAR: a window past the BAR would be someone else's MMIO. *len_out:
 * the bytes of the window that may be used (its length, cut at the BAR's end). */
static void *cap_ptr(const struct virtio_dev *v, uint8_t cap, uint32_t need, uint32_t *len_out)
{
	struct pci_dev *p = v->pci;
	uint8_t bar = pci_read8(p, cap + 4);
	uint32_t off = pci_read32(p, cap + 8), len = pci_read32(p, cap + 12);
	volatile uint8_t *base = bar < 6 ? pci_bar_ptr(p, bar) : NULL;
	if (!base || !pci_cap_window_ok(p->bar_size[bar], off, len, need)) {
		log_event(LOG_WARN, "%s: pci %02x:%02x.%x: capability at 0x%02x (type %u) describes "
			  "%u bytes at 0x%x of BAR %u, not its %u: ignored", v->name, p->bus, p->dev, p->fn, cap,
			  pci_read8(p, cap + 3), len, off, bar, need);
		return NULL;
	}
	if (len_out)
		*len_out = len < p->bar_size[bar] - off ? len : (uint32_t)(p->bar_size[bar] - off);
	return (void *)(base + off);
}

int virtio_find(struct virtio_dev *v, struct pci_dev *p, const char *name, uint32_t cfg_need)
{
	v->pci = p;
	v->name = name;
	pci_enable(p, true, true, true);
	for (uint8_t cap = pci_find_cap(p, 0x09, 0); cap; cap = pci_find_cap(p, 0x09, cap)) {
		uint8_t type = pci_read8(p, cap + 3);
		if (type == CAP_COMMON && !v->common)
			v->common = cap_ptr(v, cap, sizeof(struct virtio_common_cfg), NULL);
		else if (type == CAP_NOTIFY && !v->notify_base) {
			v->notify_base = cap_ptr(v, cap, 2, &v->notify_len);
			v->notify_mult = pci_read32(p, cap + 16);
		} else if (type == CAP_ISR && !v->isr)
			v->isr = cap_ptr(v, cap, 1, NULL);
		else if (type == CAP_DEVICE && !v->cfg)
			v->cfg = cap_ptr(v, cap, cfg_need, &v->cfg_len);
	}
	if (v->common && v->notify_base && v->cfg)
		return 0;
	v->common = NULL;   /* half a modern interface is none: the legacy one, if there is one */
	if (p->bar_is_io[0] && p->bar[0]) {
		v->io = (uint16_t)p->bar[0];
		v->cfg_len = p->bar_size[0] > L_CONFIG ? (uint32_t)(p->bar_size[0] - L_CONFIG) : 0;
		return 0;
	}
	return -E_UNSUPP;
}

static uint8_t get_status(const struct virtio_dev *v)
{
	return v->io ? inb(v->io + L_STATUS) : v->common->status;
}

static void set_status(const struct virtio_dev *v, uint8_t st)
{
	if (v->io)
		outb(v->io + L_STATUS, st);
	else
		v->common->status = st;
}

static bool status_zero(void *v)
{
	return get_status(v) == 0;
}

void virtio_reset(struct virtio_dev *v)
{
	if (v->io || v->common)
		set_status(v, 0);
}

int virtio_begin(struct virtio_dev *v, uint64_t want)
{
	set_status(v, 0);
	if (wait_until(status_zero, v, VIRTIO_RESET_TIMEOUT_MS) < 0)
		return -E_TIMEOUT;
	set_status(v, S_ACK);
	set_status(v, S_ACK | S_DRIVER);
	if (v->io) {   /* 32 feature bits, no FEATURES_OK step */
		v->features = inl(v->io + L_HOST_FEATURES) & want & 0xffffffffu;
		outl(v->io + L_GUEST_FEATURES, (uint32_t)v->features);
		return 0;
	}
	volatile struct virtio_common_cfg *c = v->common;
	c->dfselect = 0;
	uint64_t f = c->df;
	c->dfselect = 1;
	f |= (uint64_t)c->df << 32;
	v->features = f & (want | VIRTIO_F_VERSION_1);
	if (!(v->features & VIRTIO_F_VERSION_1))
		return -E_UNSUPP;
	c->gfselect = 0;
	c->gf = (uint32_t)v->features;
	c->gfselect = 1;
	c->gf = (uint32_t)(v->features >> 32);
	c->status = S_ACK | S_DRIVER | S_FEATURES_OK;
	if (!(c->status & S_FEATURES_OK))
		return -E_UNSUPP;
	return 0;
}

static uint64_t used_offset(uint16_t qs)
{
	return (16ULL * qs + 6 + 2ULL * qs + 4095) & ~4095ULL;
}

static uint64_t ring_bytes(uint16_t qs)
{
	return used_offset(qs) + ((6 + 8ULL * qs + 4095) & ~4095ULL);
}

static int ring_layout(struct virtq *q, uint16_t qi, uint16_t qs)
{
	if (!q->ring && !(q->ring = dma_alloc(ring_bytes(VIRTIO_QSIZE_MAX), 4096)))
		return -E_NOMEM;
	q->index = qi;
	q->size = qs;
	memset(q->ring, 0, ring_bytes(qs));
	q->desc = q->ring;
	q->avail = (volatile uint16_t *)((uint8_t *)q->ring + 16ULL * qs);
	q->used = (volatile uint8_t *)q->ring + used_offset(qs);
	q->last_used = q->avail_idx = 0;
	return 0;
}

int virtio_queue_setup(struct virtio_dev *v, struct virtq *q, uint16_t qi, uint16_t min_size)
{
	int rc;
	if (v->io) {
		outw(v->io + L_QUEUE_SELECT, qi);
		uint16_t qs = inw(v->io + L_QUEUE_SIZE);
		if (qs < min_size || qs > VIRTIO_QSIZE_MAX || (qs & (qs - 1)))
			return -E_UNSUPP;   /* the legacy ring size cannot be changed by the driver */
		if ((rc = ring_layout(q, qi, qs)) < 0)
			return rc;
		outl(v->io + L_QUEUE_PFN, (uint32_t)(dma_addr(q->ring) >> 12));
		return 0;
	}
	volatile struct virtio_common_cfg *c = v->common;
	c->qselect = qi;
	uint16_t qs = c->qsize;
	if (qs < min_size)
		return -E_UNSUPP;
	if (qs > VIRTIO_QSIZE_MAX)
		qs = VIRTIO_QSIZE_MAX;
	uint64_t at = (uint64_t)c->qnotify_off * v->notify_mult;
	if (at + 2 > v->notify_len) {
		log_event(LOG_WARN, "%s: queue %u's doorbell at %llu is past the %u-byte notify window", v->name,
			  qi, (unsigned long long)at, v->notify_len);
		return -E_DEVICE;
	}
	if ((rc = ring_layout(q, qi, qs)) < 0)
		return rc;
	c->qsize = qs;
	c->qdesc = dma_addr(q->desc);
	c->qavail = dma_addr((const void *)q->avail);
	c->qused = dma_addr((const void *)q->used);
	q->notify = (volatile uint16_t *)(v->notify_base + at);
	c->qenable = 1;
	return 0;
}

int virtio_ready(struct virtio_dev *v)
{
	set_status(v, S_ACK | S_DRIVER | (v->io ? 0 : S_FEATURES_OK) | S_DRIVER_OK);
	return get_status(v) & S_FAILED ? -E_DEVICE : 0;
}

uint8_t virtio_cfg8(const struct virtio_dev *v, unsigned off)
{
	return v->io ? inb((uint16_t)(v->io + L_CONFIG + off)) : v->cfg[off];
}

uint32_t virtio_cfg32(const struct virtio_dev *v, unsigned off)
{
	return v->io ? inl((uint16_t)(v->io + L_CONFIG + off)) : *(volatile uint32_t *)(v->cfg + off);
}

void virtq_post(struct virtq *q, uint16_t head)
{
	q->avail[2 + q->avail_idx % q->size] = head;
	q->avail_idx++;
}

void virtq_kick(const struct virtio_dev *v, struct virtq *q)
{
	__asm__ __volatile__("" ::: "memory");   /* ring entries before the index (x86: stores in order) */
	q->avail[1] = q->avail_idx;
	mmio_barrier();
	if (v->io)
		outw(v->io + L_QUEUE_NOTIFY, q->index);
	else
		*q->notify = q->index;
}

bool virtq_has_used(const struct virtq *q)
{
	return q->last_used != *(volatile uint16_t *)(q->used + 2);
}

bool virtq_next_used(struct virtq *q, uint32_t *id, uint32_t *len)
{
	if (!virtq_has_used(q))
		return false;
	__asm__ __volatile__("" ::: "memory");   /* the index before the element it covers */
	volatile uint32_t *elem = (volatile uint32_t *)(q->used + 4 + 8 * (q->last_used % q->size));
	*id = elem[0];
	if (len)
		*len = elem[1];
	q->last_used++;
	return true;
}
