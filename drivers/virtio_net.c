/* virtio-net over PCI, modern (virtio 1.0+, capability-mapped registers; transitional devices
 * through their modern interface) or legacy-only (I/O port registers, 0.9.5): a receive and a
 * transmit split virtqueue, polled; the MAC and link state from the device config; a transmit
 * ring that stops moving is reset. Frames go to and come from the network stack (kernel/net). */
#include "virtio.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../net/net.h"
#include "../kernel/pci.h"
#include "../kernel/time.h"

#define VNET_TX_TIMEOUT_MS   2000u   /* frames queued this long with no completion: reset */
#define VNET_LINK_POLL_MS      200u

#define F_MAC        (1ULL << 5)
#define F_STATUS     (1ULL << 16)
#define LINK_UP      1u
#define CFG_READ_BYTES 8u   /* the device configuration read: mac[6], status */

#define RX_BUFS   128
#define TX_BUFS    64
#define BUF_SIZE 2048

struct vq {
	struct virtq q;
	uint8_t *bufs;               /* nbufs buffers of BUF_SIZE */
	uint16_t nbufs;
};

struct vnet {
	struct netif ifc;
	struct virtio_dev vio;
	uint32_t hdr_len;            /* 12 with VERSION_1, 10 for legacy devices */
	struct vq rx, tx;
	bool tx_busy[TX_BUFS];
	uint32_t tx_pending;
	uint64_t tx_progress_us;     /* last completion, or when the ring went from empty to busy */
	deadline_t next_link_check;
	bool broken;                 /* the last reset failed: link down, the reset retried */
};

/* Queue qi with its buffers (allocated once, kept over resets). */
static int vq_setup(struct vnet *v, struct vq *q, uint16_t qi, uint16_t nbufs)
{
	if (!q->bufs && !(q->bufs = dma_alloc((size_t)nbufs * BUF_SIZE, 4096)))
		return -E_NOMEM;
	int rc = virtio_queue_setup(&v->vio, &q->q, qi, 2);
	if (rc < 0)
		return rc;
	q->nbufs = nbufs < q->q.size ? nbufs : q->q.size;
	return 0;
}

/* Every receive buffer is offered to the device once. */
static void rx_fill(struct vnet *v)
{
	for (uint16_t i = 0; i < v->rx.nbufs; i++) {
		v->rx.q.desc[i] = (struct virtq_desc){ dma_addr(v->rx.bufs + (size_t)i * BUF_SIZE), BUF_SIZE,
						       VIRTQ_DESC_F_WRITE, 0 };
		virtq_post(&v->rx.q, i);
	}
	virtq_kick(&v->vio, &v->rx.q);
}

/* Reset, negotiate, both queues, DRIVER_OK, receive buffers posted. Probe and recovery. */
static int vnet_init_device(struct vnet *v)
{
	int rc = virtio_begin(&v->vio, F_MAC | F_STATUS);
	if (rc < 0 || (rc = vq_setup(v, &v->rx, 0, RX_BUFS)) < 0 || (rc = vq_setup(v, &v->tx, 1, TX_BUFS)) < 0)
		return rc;
	v->hdr_len = v->vio.io ? 10 : 12;
	memset(v->tx_busy, 0, sizeof(v->tx_busy));
	v->tx_pending = 0;
	if ((rc = virtio_ready(&v->vio)) < 0)
		return rc;
	rx_fill(v);
	return 0;
}

static void tx_reap(struct vnet *v)
{
	struct vq *q = &v->tx;
	for (uint32_t id; virtq_next_used(&q->q, &id, NULL);) {
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
	v->tx.q.desc[id] = (struct virtq_desc){ dma_addr(b), v->hdr_len + len, 0, 0 };
	if (!v->tx_pending)
		v->tx_progress_us = time_now_us();
	v->tx_busy[id] = true;
	v->tx_pending++;
	virtq_post(&v->tx.q, id);
	virtq_kick(&v->vio, &v->tx.q);
	return 0;
}

static void check_link(struct vnet *v)
{
	bool up = true;
	if (v->vio.features & F_STATUS)
		up = (virtio_cfg8(&v->vio, 6) & LINK_UP) != 0;
	if (up != v->ifc.link) {
		v->ifc.link = up;
		log_event(up ? LOG_INFO : LOG_WARN, "%s: link %s", v->ifc.name, up ? "up" : "down");
	}
}

/* Received frames to the stack, every buffer offered again. */
static void rx_reap(struct vnet *v)
{
	struct vq *q = &v->rx;
	bool reposted = false;
	for (uint32_t id, len; virtq_next_used(&q->q, &id, &len);) {
		if (id >= q->nbufs)
			continue;   /* not a buffer we gave: ignored */
		uint8_t *b = q->bufs + (size_t)id * BUF_SIZE;
		if (len > v->hdr_len && len <= BUF_SIZE)
			net_input(&v->ifc, b + v->hdr_len, len - v->hdr_len);
		else
			v->ifc.ctr.bad_eth++;
		virtq_post(&q->q, (uint16_t)id);
		reposted = true;
	}
	if (reposted)
		virtq_kick(&v->vio, &q->q);
}

static void vnet_poll(struct netif *ifc)
{
	struct vnet *v = ifc->drv;
	/* A device whose reset failed is half set up: its rings are not read until a reset works. */
	if (!v->broken) {
		rx_reap(v);
		tx_reap(v);
	}
	if ((v->tx_pending || v->broken) && time_now_us() - v->tx_progress_us > VNET_TX_TIMEOUT_MS * 1000ULL) {
		if (v->broken)
			log_event(LOG_WARN, "%s: resetting the NIC again", ifc->name);
		else
			log_event(LOG_WARN, "%s: transmit ring stuck for %u ms; resetting the NIC", ifc->name,
				  VNET_TX_TIMEOUT_MS);
		ifc->ctr.resets++;
		int rc = vnet_init_device(v);
		if (rc < 0) {
			virtio_reset(&v->vio);   /* whatever it took of the new rings, it stops using them */
			if (!v->broken)
				log_event(LOG_ERR, "%s: re-initialisation failed: %s; link down, retrying every %u ms",
					  ifc->name, err_str(rc), VNET_TX_TIMEOUT_MS);
			ifc->link = false;
		} else if (v->broken) {
			log_event(LOG_INFO, "%s: the NIC is back after a reset", ifc->name);
		}
		v->broken = rc < 0;
		v->tx_progress_us = time_now_us();
	}
	/* A device whose reset failed keeps its link down whatever its STATUS says, until a reset works. */
	if (!v->broken && deadline_passed(v->next_link_check)) {
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
	int rc = virtio_find(&v->vio, p, "virtio-net", CFG_READ_BYTES);
	if (rc == 0)
		rc = vnet_init_device(v);
	if (rc < 0) {
		virtio_reset(&v->vio);
		kfree(v);   /* the rings stay allocated: a failed probe happens once per device */
		return rc;
	}
	struct netif *ifc = &v->ifc;
	ifc->drv = v;
	ifc->ops = &vnet_ops;
	ifc->pci_bus = p->bus;
	ifc->pci_dev = p->dev;
	ifc->pci_fn = p->fn;
	ifc->driver = v->vio.io ? "virtio-net (legacy)" : "virtio-net";
	if (v->vio.features & F_MAC) {
		for (int i = 0; i < 6; i++)
			ifc->mac[i] = virtio_cfg8(&v->vio, (unsigned)i);
	} else {
		uint64_t t = time_now_us();
		uint8_t mac[6] = { 0x02, 0xc0, 0x0b, (uint8_t)(t >> 16), (uint8_t)(t >> 8), (uint8_t)t };
		memcpy(ifc->mac, mac, 6);   /* locally administered */
	}
	rc = net_register(ifc);
	if (rc < 0) {
		virtio_reset(&v->vio);
		return rc;
	}
	check_link(v);
	kprintf("%s: %s at pci %02x:%02x.%x, mac %02x:%02x:%02x:%02x:%02x:%02x, link %s\n", ifc->name,
		ifc->driver, p->bus, p->dev, p->fn, ifc->mac[0], ifc->mac[1], ifc->mac[2], ifc->mac[3],
		ifc->mac[4], ifc->mac[5], ifc->link ? "up" : "down");
	return 0;
}
PCI_DRIVER(virtio_net, "virtio-net", vnet_match, vnet_probe);
