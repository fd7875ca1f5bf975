/* virtio-net over PCI, modern (virtio 1.0+, capability-mapped registers; transitional devices
 * through their modern interface) or legacy-only (I/O port registers, 0.9.5): a receive and a
 * transmit split virtqueue, polled; the MAC and link state from the device config; a transmit
 * ring that stops moving is reset. Frames go to and come from the network stack (kernel/net). */
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/io.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../net/net.h"
#include "../kernel/pci.h"
#include "../kernel/time.h"

#define VNET_TX_TIMEOUT_MS   2000u   /* frames queued this long with no completion: reset */
#define VNET_RESET_TIMEOUT_MS 1000u
#define VNET_LINK_POLL_MS      200u

enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4 };
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_FAILED = 128 };
#define F_MAC        (1ULL << 5)
#define F_STATUS     (1ULL << 16)
#define F_VERSION_1  (1ULL << 32)
#define LINK_UP      1u
enum { L_HOST_FEATURES = 0x00, L_GUEST_FEATURES = 0x04, L_QUEUE_PFN = 0x08, L_QUEUE_SIZE = 0x0c,
       L_QUEUE_SELECT = 0x0e, L_QUEUE_NOTIFY = 0x10, L_STATUS = 0x12, L_CONFIG = 0x14 };

struct common_cfg {
	uint32_t dfselect, df, gfselect, gf;
	uint16_t msix, numq;
	uint8_t status, cfggen;
	uint16_t qselect, qsize, qmsix, qenable, qnotify_off;
	uint64_t qdesc, qavail, qused;
} __attribute__((packed));

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
#define D_WRITE 2

#define QSIZE_MAX 256
#define RX_BUFS   128
#define TX_BUFS    64
#define BUF_SIZE 2048

struct vq {
	uint16_t size, last_used, avail_idx;
	void *ring;
	struct desc *desc;
	volatile uint16_t *avail;
	volatile uint8_t *used;
	volatile uint16_t *notify;
	uint8_t *bufs;               /* nbufs buffers of BUF_SIZE */
	uint16_t nbufs;
};

struct vnet {
	struct netif ifc;
	struct pci_dev *pci;
	volatile struct common_cfg *common;
	volatile uint8_t *cfg, *notify_base;
	uint32_t notify_mult;
	uint16_t io;
	uint64_t features;
	uint32_t hdr_len;            /* 12 with VERSION_1, 10 for legacy devices */
	struct vq rx, tx;
	bool tx_busy[TX_BUFS];
	uint32_t tx_pending;
	uint64_t tx_progress_us;     /* last completion, or when the ring went from empty to busy */
	deadline_t next_link_check;
};

static void *cap_ptr(struct pci_dev *p, uint8_t cap)
{
	uint8_t bar = pci_read8(p, cap + 4);
	uint32_t off = pci_read32(p, cap + 8);
	volatile uint8_t *base = pci_bar_ptr(p, bar);
	return base ? (void *)(base + off) : NULL;
}

static int find_caps(struct vnet *v)
{
	for (uint8_t cap = pci_find_cap(v->pci, 0x09, 0); cap; cap = pci_find_cap(v->pci, 0x09, cap)) {
		uint8_t type = pci_read8(v->pci, cap + 3);
		if (type == CAP_COMMON && !v->common)
			v->common = cap_ptr(v->pci, cap);
		else if (type == CAP_NOTIFY && !v->notify_base) {
			v->notify_base = cap_ptr(v->pci, cap);
			v->notify_mult = pci_read32(v->pci, cap + 16);
		} else if (type == CAP_DEVICE && !v->cfg)
			v->cfg = cap_ptr(v->pci, cap);
	}
	return v->common && v->notify_base && v->cfg ? 0 : -E_UNSUPP;
}

static uint8_t get_status(struct vnet *v) { return v->io ? inb(v->io + L_STATUS) : v->common->status; }

static void set_status(struct vnet *v, uint8_t st)
{
	if (v->io)
		outb(v->io + L_STATUS, st);
	else
		v->common->status = st;
}

static uint8_t cfg8(struct vnet *v, unsigned off)
{
	return v->io ? inb((uint16_t)(v->io + L_CONFIG + off)) : v->cfg[off];
}

static uint64_t ring_bytes(uint16_t qs)
{
	uint64_t used_off = (16ULL * qs + 6 + 2ULL * qs + 4095) & ~4095ULL;
	return used_off + ((6 + 8ULL * qs + 4095) & ~4095ULL);
}

static int vq_setup(struct vq *q, uint16_t qs, uint16_t nbufs)
{
	if (!q->ring) {
		q->ring = dma_alloc(ring_bytes(QSIZE_MAX), 4096);
		q->bufs = dma_alloc((size_t)nbufs * BUF_SIZE, 4096);
		if (!q->ring || !q->bufs)
			return -E_NOMEM;
	}
	q->size = qs;
	q->nbufs = nbufs < qs ? nbufs : qs;
	memset(q->ring, 0, ring_bytes(qs));
	q->desc = q->ring;
	q->avail = (volatile uint16_t *)((uint8_t *)q->ring + 16ULL * qs);
	q->used = (volatile uint8_t *)q->ring + ((16ULL * qs + 6 + 2ULL * qs + 4095) & ~4095ULL);
	q->last_used = q->avail_idx = 0;
	return 0;
}

static volatile uint16_t *used_idx(struct vq *q) { return (volatile uint16_t *)(q->used + 2); }

static void vq_kick(struct vnet *v, struct vq *q, uint16_t qi)
{
	__asm__ __volatile__("" ::: "memory");
	q->avail[1] = q->avail_idx;
	mmio_barrier();
	if (v->io)
		outw(v->io + L_QUEUE_NOTIFY, qi);
	else
		*q->notify = qi;
}

static void vq_post(struct vq *q, uint16_t id)
{
	q->avail[2 + q->avail_idx % q->size] = id;
	q->avail_idx++;
}

/* Every receive buffer is offered to the device once. */
static void rx_fill(struct vnet *v)
{
	for (uint16_t i = 0; i < v->rx.nbufs; i++) {
		v->rx.desc[i] = (struct desc){ dma_addr(v->rx.bufs + (size_t)i * BUF_SIZE), BUF_SIZE, D_WRITE, 0 };
		vq_post(&v->rx, i);
	}
	vq_kick(v, &v->rx, 0);
}

static int queue_init_modern(struct vnet *v, struct vq *q, uint16_t qi, uint16_t nbufs)
{
	volatile struct common_cfg *c = v->common;
	c->qselect = qi;
	uint16_t qs = c->qsize;
	if (qs < 2)
		return -E_UNSUPP;
	if (qs > QSIZE_MAX)
		qs = QSIZE_MAX;
	int rc = vq_setup(q, qs, nbufs);
	if (rc < 0)
		return rc;
	c->qsize = qs;
	c->qdesc = dma_addr(q->desc);
	c->qavail = dma_addr((const void *)q->avail);
	c->qused = dma_addr((const void *)q->used);
	q->notify = (volatile uint16_t *)(v->notify_base + (uint64_t)c->qnotify_off * v->notify_mult);
	c->qenable = 1;
	return 0;
}

static int queue_init_legacy(struct vnet *v, struct vq *q, uint16_t qi, uint16_t nbufs)
{
	outw(v->io + L_QUEUE_SELECT, qi);
	uint16_t qs = inw(v->io + L_QUEUE_SIZE);
	if (qs < 2 || qs > QSIZE_MAX || (qs & (qs - 1)))
		return -E_UNSUPP;   /* a legacy ring's size is the device's */
	int rc = vq_setup(q, qs, nbufs);
	if (rc < 0)
		return rc;
	outl(v->io + L_QUEUE_PFN, (uint32_t)(dma_addr(q->ring) >> 12));
	return 0;
}

static bool status_zero(void *v)
{
	return get_status(v) == 0;
}

static int wait_status_zero(struct vnet *v)
{
	return wait_until(status_zero, v, VNET_RESET_TIMEOUT_MS);
}

/* Reset, negotiate, both queues, DRIVER_OK, receive buffers posted. Probe and recovery. */
static int vnet_init_device(struct vnet *v)
{
	set_status(v, 0);
	if (wait_status_zero(v) < 0)
		return -E_TIMEOUT;
	set_status(v, S_ACK);
	set_status(v, S_ACK | S_DRIVER);
	int rc;
	if (v->io) {
		v->features = inl(v->io + L_HOST_FEATURES) & (F_MAC | F_STATUS);
		outl(v->io + L_GUEST_FEATURES, (uint32_t)v->features);
		v->hdr_len = 10;
		if ((rc = queue_init_legacy(v, &v->rx, 0, RX_BUFS)) < 0 ||
		    (rc = queue_init_legacy(v, &v->tx, 1, TX_BUFS)) < 0)
			return rc;
	} else {
		volatile struct common_cfg *c = v->common;
		c->dfselect = 0;
		uint64_t f = c->df;
		c->dfselect = 1;
		f |= (uint64_t)c->df << 32;
		v->features = f & (F_VERSION_1 | F_MAC | F_STATUS);
		if (!(v->features & F_VERSION_1))
			return -E_UNSUPP;
		c->gfselect = 0;
		c->gf = (uint32_t)v->features;
		c->gfselect = 1;
		c->gf = (uint32_t)(v->features >> 32);
		c->status = S_ACK | S_DRIVER | S_FEATURES_OK;
		if (!(c->status & S_FEATURES_OK))
			return -E_UNSUPP;
		v->hdr_len = 12;
		if ((rc = queue_init_modern(v, &v->rx, 0, RX_BUFS)) < 0 ||
		    (rc = queue_init_modern(v, &v->tx, 1, TX_BUFS)) < 0)
			return rc;
	}
	memset(v->tx_busy, 0, sizeof(v->tx_busy));
	v->tx_pending = 0;
	set_status(v, S_ACK | S_DRIVER | (v->io ? 0 : S_FEATURES_OK) | S_DRIVER_OK);
	if (get_status(v) & S_FAILED)
		return -E_DEVICE;
	rx_fill(v);
	return 0;
}

static void tx_reap(struct vnet *v)
{
	struct vq *q = &v->tx;
	while (q->last_used != *used_idx(q)) {
		__asm__ __volatile__("" ::: "memory");
		volatile uint32_t *elem = (volatile uint32_t *)(q->used + 4 + 8 * (q->last_used % q->size));
		uint32_t id = elem[0];
		q->last_used++;
		if (id < q->nbufs && v->tx_busy[id]) {
			v->tx_busy[id] = false;
			v->tx_pending--;
		}
		v->tx_progress_us = time_now_us();
	}
}

static int vnet_send(struct netif *ifc, const void *frame, uint32_t len)
{
	struct vnet *v = ifc->drv;
	tx_reap(v);
	if (len > NET_FRAME_MAX || !ifc->link)
		return -E_BUSY;
	uint16_t id;
	for (id = 0; id < v->tx.nbufs && v->tx_busy[id]; id++)
		;
	if (id == v->tx.nbufs)
		return -E_BUSY;
	uint8_t *b = v->tx.bufs + (size_t)id * BUF_SIZE;
	memset(b, 0, v->hdr_len);   /* no offloads: flags 0, GSO none */
	memcpy(b + v->hdr_len, frame, len);
	v->tx.desc[id] = (struct desc){ dma_addr(b), v->hdr_len + len, 0, 0 };
	if (!v->tx_pending)
		v->tx_progress_us = time_now_us();
	v->tx_busy[id] = true;
	v->tx_pending++;
	vq_post(&v->tx, id);
	vq_kick(v, &v->tx, 1);
	return 0;
}

static void check_link(struct vnet *v)
{
	bool up = true;
	if (v->features & F_STATUS)
		up = (cfg8(v, 6) & LINK_UP) != 0;
	if (up != v->ifc.link) {
		v->ifc.link = up;
		log_event(up ? LOG_INFO : LOG_WARN, "%s: link %s", v->ifc.name, up ? "up" : "down");
	}
}

static void vnet_poll(struct netif *ifc)
{
	struct vnet *v = ifc->drv;
	struct vq *q = &v->rx;
	bool reposted = false;
	while (q->last_used != *used_idx(q)) {
		__asm__ __volatile__("" ::: "memory");
		volatile uint32_t *elem = (volatile uint32_t *)(q->used + 4 + 8 * (q->last_used % q->size));
		uint32_t id = elem[0], len = elem[1];
		q->last_used++;
		if (id >= q->nbufs)
			continue;   /* not a buffer we gave: ignored */
		uint8_t *b = q->bufs + (size_t)id * BUF_SIZE;
		if (len > v->hdr_len && len <= BUF_SIZE)
			net_input(ifc, b + v->hdr_len, len - v->hdr_len);
		else
			ifc->ctr.bad_eth++;
		vq_post(q, (uint16_t)id);
		reposted = true;
	}
	if (reposted)
		vq_kick(v, q, 0);
	tx_reap(v);
	if (v->tx_pending && time_now_us() - v->tx_progress_us > VNET_TX_TIMEOUT_MS * 1000ULL) {
		log_event(LOG_WARN, "%s: transmit ring stuck for %u ms; resetting the device", ifc->name,
			  VNET_TX_TIMEOUT_MS);
		ifc->ctr.resets++;
		int rc = vnet_init_device(v);
		if (rc < 0) {
			log_event(LOG_ERR, "%s: re-initialisation failed: %s", ifc->name, err_str(rc));
			ifc->link = false;
		}
		v->tx_progress_us = time_now_us();
	}
	if (deadline_passed(v->next_link_check)) {
		v->next_link_check = deadline_in_ms(VNET_LINK_POLL_MS);
		check_link(v);
	}
}

static const struct netif_ops vnet_ops = { .send = vnet_send, .poll = vnet_poll };

static bool vnet_match(const struct pci_dev *p)
{
	return p->vendor == 0x1af4 && (p->device == 0x1000 || p->device == 0x1041);
}

static int vnet_probe(struct pci_dev *p)
{
	struct vnet *v = kzalloc(sizeof(*v));
	if (!v)
		return -E_NOMEM;
	v->pci = p;
	pci_enable(p, true, true, true);
	int rc = find_caps(v);
	if (rc == -E_UNSUPP && p->bar_is_io[0] && p->bar[0]) {
		v->io = (uint16_t)p->bar[0];
		rc = 0;
	}
	if (rc == 0)
		rc = vnet_init_device(v);
	if (rc < 0) {
		if (v->common || v->io)
			set_status(v, 0);
		kfree(v);   /* the rings stay allocated: a failed probe happens once per device */
		return rc;
	}
	struct netif *ifc = &v->ifc;
	ifc->drv = v;
	ifc->ops = &vnet_ops;
	ifc->pci_bus = p->bus;
	ifc->pci_dev = p->dev;
	ifc->pci_fn = p->fn;
	ifc->driver = v->io ? "virtio-net (legacy)" : "virtio-net";
	if (v->features & F_MAC) {
		for (int i = 0; i < 6; i++)
			ifc->mac[i] = cfg8(v, (unsigned)i);
	} else {
		uint64_t t = time_now_us();
		uint8_t mac[6] = { 0x02, 0xc0, 0x0b, (uint8_t)(t >> 16), (uint8_t)(t >> 8), (uint8_t)t };
		memcpy(ifc->mac, mac, 6);   /* locally administered */
	}
	rc = net_register(ifc);
	if (rc < 0) {
		set_status(v, 0);
		return rc;
	}
	check_link(v);
	kprintf("%s: %s at pci %02x:%02x.%x, mac %02x:%02x:%02x:%02x:%02x:%02x, link %s\n", ifc->name,
		ifc->driver, p->bus, p->dev, p->fn, ifc->mac[0], ifc->mac[1], ifc->mac[2], ifc->mac[3],
		ifc->mac[4], ifc->mac[5], ifc->link ? "up" : "down");
	return 0;
}
PCI_DRIVER(virtio_net, "virtio-net", vnet_match, vnet_probe);
