/* The virtio PCI transport (drivers/virtio.c), shared by virtio-blk and virtio-net: finding the
 * modern capabilities (else a legacy-only device's I/O BAR), reset and feature negotiation,
 * split virtqueues (set up, offer a buffer, ring the doorbell, reap the used ring), and the
 * device-specific configuration bytes. Modern is virtio 1.0+; legacy is 0.9.5 over I/O ports. */
#ifndef DRIVERS_VIRTIO_H
#define DRIVERS_VIRTIO_H

#include "../lib/port.h"
#include "../kernel/pci.h"

#define VIRTIO_F_VERSION_1   (1ULL << 32)
#define VIRTIO_QSIZE_MAX     256   /* the largest ring a driver takes; devices offering more get this */

struct virtio_common_cfg;

struct virtio_dev {
	struct pci_dev *pci;
	const char *name;                          /* "virtio-blk": for messages */
	volatile struct virtio_common_cfg *common; /* modern: the common configuration */
	volatile uint8_t *cfg;                     /* modern: the device-specific configuration */
	volatile uint8_t *notify_base, *isr;
	uint32_t notify_mult, notify_len;
	uint32_t cfg_len;                          /* device-specific bytes that may be read (modern: >= cfg_need) */
	uint16_t io;                               /* legacy: the I/O port base; 0 for a modern device */
	uint64_t features;                         /* negotiated (VIRTIO_F_VERSION_1 on modern devices) */
};

/* A split virtqueue in the legacy layout (also valid for modern devices): descriptors, the
 * available ring, then the used ring on the next 4 KiB boundary. */
struct virtq_desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
#define VIRTQ_DESC_F_NEXT  1
#define VIRTQ_DESC_F_WRITE 2

struct virtq {
	uint16_t index;                  /* the queue's number on its device */
	uint16_t size, last_used, avail_idx;
	void *ring;                      /* allocated once, for VIRTIO_QSIZE_MAX entries */
	struct virtq_desc *desc;
	volatile uint16_t *avail;        /* flags, idx, ring[size] */
	volatile uint8_t *used;          /* flags, idx, ring of {id, len} */
	volatile uint16_t *notify;       /* modern: the queue's doorbell */
};

/* Binds v to p: the modern capabilities, each window checked to lie inside its BAR (cfg_need:
 * the device-specific bytes the driver reads), else a legacy-only device's I/O BAR 0. Enables
 * the device on PCI. 0, or -E_UNSUPP when it has neither. */
int virtio_find(struct virtio_dev *v, struct pci_dev *p, const char *name, uint32_t cfg_need);
/* Resets the device (waiting for its status to read zero, VIRTIO_RESET_TIMEOUT_MS) and
 * negotiates the features of `want` the device offers; a modern device must offer VERSION_1
 * and accept the set (FEATURES_OK). 0, -E_TIMEOUT or -E_UNSUPP. Probe and recovery start here. */
int virtio_begin(struct virtio_dev *v, uint64_t want);
/* Sets up queue qi with the device's size (at most VIRTIO_QSIZE_MAX, at least min_size; a
 * legacy ring's size is the device's and must be a power of two), zeroed, and tells the device
 * where it is. 0, -E_UNSUPP, -E_NOMEM or -E_DEVICE (a doorbell outside the notify window). */
int virtio_queue_setup(struct virtio_dev *v, struct virtq *q, uint16_t qi, uint16_t min_size);
/* DRIVER_OK, after the queues: 0, or -E_DEVICE when the device reports FAILED. */
int virtio_ready(struct virtio_dev *v);
/* Status 0: the device stops using the rings (a failed probe). */
void virtio_reset(struct virtio_dev *v);

uint8_t virtio_cfg8(const struct virtio_dev *v, unsigned off);
uint32_t virtio_cfg32(const struct virtio_dev *v, unsigned off);

/* Offers the descriptor chain at head (not yet visible to the device). */
void virtq_post(struct virtq *q, uint16_t head);
/* Publishes what was posted and rings the queue's doorbell. */
void virtq_kick(const struct virtio_dev *v, struct virtq *q);
/* The device has used a chain not yet reaped. */
bool virtq_has_used(const struct virtq *q);
/* Reaps the next used element: its head descriptor id and the bytes the device wrote; false
 * when there is none. The id is the device's word: check it before use. */
bool virtq_next_used(struct virtq *q, uint32_t *id, uint32_t *len);

#endif
