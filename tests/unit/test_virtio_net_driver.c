/* The virtio-net driver over the shared virtio transport against a fake legacy virtio-net device
 * on the host (its I/O port registers and split virtqueues in DMA memory), for what QEMU 7.2
 * cannot show: a transmit queue that stops completing (QEMU's always completes) is reset after
 * VNET_TX_TIMEOUT_MS and not before, both queues are rebuilt and traffic flows again through the
 * real stack (an ARP request answered); an idle queue is never reset; a reset that fails (the
 * device status never reads back zero) keeps the link down, whatever the device's link status
 * says, and is retried every VNET_TX_TIMEOUT_MS until one works; such a device fails its probe.
 * The fake runs whenever the driver reads the clock, which every wait of the driver does. The
 * modern interface's registers are plain MMIO, which a fake cannot follow write by write; the
 * reset logic above the transport is the same for both. */
#include <stdint.h>
/* Port I/O goes to the fake device: kernel/io.h is replaced by the functions below. */
#define KERNEL_IO_H
static uint32_t port_in(uint16_t port, int bytes);
static void port_out(uint16_t port, uint32_t v, int bytes);
static inline void outb(uint16_t p, uint8_t v) { port_out(p, v, 1); }
static inline void outw(uint16_t p, uint16_t v) { port_out(p, v, 2); }
static inline void outl(uint16_t p, uint32_t v) { port_out(p, v, 4); }
static inline uint8_t inb(uint16_t p) { return (uint8_t)port_in(p, 1); }
static inline uint16_t inw(uint16_t p) { return (uint16_t)port_in(p, 2); }
static inline uint32_t inl(uint16_t p) { return port_in(p, 4); }
static inline void cpu_pause(void) {}
#include "../../drivers/virtio_net.c"
#include "../../drivers/virtio.c"
#include "../lib/arp_frames.h"
#include "../lib/check.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

/* ---- the fake device ------------------------------------------------------------------------ */
#define IO_BASE 0xc000u
#define FQ_SIZE 256u   /* QEMU's legacy queue size */
#define HDR 10u        /* the legacy virtio-net header */

static struct {
	uint8_t status;
	bool status_sticks;       /* a write of 0 does not reset the device: its reset never ends */
	uint32_t guest_features;
	uint16_t qsel;
	uint32_t pfn[2];
	uint16_t last_avail[2], used_idx[2];
	uint8_t mac[6];
	uint16_t net_status;      /* the config's status field: bit 0 link up */
	bool tx_stalled;          /* transmit buffers are not used ... */
	bool stall_ends_at_reset; /* ... until the next reset */
	uint8_t sent[16][2048];
	uint32_t sent_len[16];
	int nsent;
	uint8_t rx_frame[2048];
	uint32_t rx_len;          /* a frame waiting to be received, 0 when none */
	int resets;
} F;

static uint32_t port_in(uint16_t port, int bytes)
{
	unsigned r = port - IO_BASE;
	if (r >= L_CONFIG && r + (unsigned)bytes <= L_CONFIG + 8) {
		uint8_t cfg[8];
		memcpy(cfg, F.mac, 6);
		cfg[6] = (uint8_t)F.net_status;
		cfg[7] = (uint8_t)(F.net_status >> 8);
		uint32_t v = 0;
		memcpy(&v, cfg + (r - L_CONFIG), (size_t)bytes);
		return v;
	}
	switch (r) {
	case L_HOST_FEATURES: return (uint32_t)(F_MAC | F_STATUS);
	case L_GUEST_FEATURES: return F.guest_features;
	case L_QUEUE_PFN: return F.qsel < 2 ? F.pfn[F.qsel] : 0;
	case L_QUEUE_SIZE: return F.qsel < 2 ? FQ_SIZE : 0;
	case L_QUEUE_SELECT: return F.qsel;
	case L_STATUS: return F.status;
	}
	return 0;
}

static void fake_reset(void)
{
	F.status = 0;
	F.guest_features = 0;
	memset(F.pfn, 0, sizeof(F.pfn));
	memset(F.last_avail, 0, sizeof(F.last_avail));
	memset(F.used_idx, 0, sizeof(F.used_idx));
	F.resets++;
	if (F.stall_ends_at_reset)
		F.tx_stalled = false;
}

static void port_out(uint16_t port, uint32_t v, int bytes)
{
	(void)bytes;
	switch (port - IO_BASE) {
	case L_GUEST_FEATURES: F.guest_features = v; break;
	case L_QUEUE_SELECT: F.qsel = (uint16_t)v; break;
	case L_QUEUE_PFN:
		if (F.qsel < 2) {
			F.pfn[F.qsel] = v;
			F.last_avail[F.qsel] = F.used_idx[F.qsel] = 0;
		}
		break;
	case L_STATUS:
		if (v == 0 && !F.status_sticks)
			fake_reset();
		else if (v)
			F.status = (uint8_t)v;
		break;
	}
}

/* Queue qi's rings, as the legacy layout places them from its page frame number. */
static struct virtq_desc *fq_desc(int qi) { return (struct virtq_desc *)(uintptr_t)((uint64_t)F.pfn[qi] << 12); }
static volatile uint16_t *fq_avail(int qi) { return (volatile uint16_t *)((uint8_t *)fq_desc(qi) + 16 * FQ_SIZE); }
static volatile uint8_t *fq_used(int qi) { return (volatile uint8_t *)fq_desc(qi) + used_offset(FQ_SIZE); }

/* The next buffer the driver offered on queue qi, or NULL. */
static struct virtq_desc *fq_take(int qi, uint16_t *head)
{
	if (!F.pfn[qi] || F.last_avail[qi] == fq_avail(qi)[1])
		return NULL;
	*head = fq_avail(qi)[2 + F.last_avail[qi]++ % FQ_SIZE];
	return *head < FQ_SIZE ? &fq_desc(qi)[*head] : NULL;
}

static void fq_give_back(int qi, uint16_t head, uint32_t len)
{
	volatile uint32_t *e = (volatile uint32_t *)(fq_used(qi) + 4 + 8 * (F.used_idx[qi] % FQ_SIZE));
	e[0] = head;
	e[1] = len;
	*(volatile uint16_t *)(fq_used(qi) + 2) = ++F.used_idx[qi];
}

static void fake_step(void)
{
	if (!(F.status & S_DRIVER_OK))
		return;
	uint16_t head;
	struct virtq_desc *d;
	while (!F.tx_stalled && (d = fq_take(1, &head))) {
		if (F.nsent < 16 && d->len > HDR && d->len - HDR <= 2048) {
			memcpy(F.sent[F.nsent], (uint8_t *)(uintptr_t)d->addr + HDR, d->len - HDR);
			F.sent_len[F.nsent++] = d->len - HDR;
		}
		fq_give_back(1, head, 0);
	}
	if (F.rx_len && (d = fq_take(0, &head))) {
		uint8_t *b = (uint8_t *)(uintptr_t)d->addr;
		if ((d->flags & VIRTQ_DESC_F_WRITE) && d->len >= HDR + F.rx_len) {
			memset(b, 0, HDR);
			memcpy(b + HDR, F.rx_frame, F.rx_len);
			fq_give_back(0, head, HDR + F.rx_len);
		}
		F.rx_len = 0;
	}
}

/* ---- what the driver needs from the kernel -------------------------------------------------- */
static uint64_t now_us = 1000000;
uint64_t time_now_us(void)
{
	fake_step();
	return now_us += 10;
}
void time_delay_us(uint64_t us)
{
	now_us += us;
	fake_step();
}
int kprintf(const char *fmt, ...) { (void)fmt; return 0; }
#include "../lib/fake_log.h"
/* DMA memory below 4 GiB: a legacy queue's address is a 32-bit page frame number. */
void *dma_alloc(size_t bytes, size_t align)
{
	static uint8_t *arena;
	static size_t used;
	const size_t size = 8u << 20;
	if (!arena) {
		void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
		if (p == MAP_FAILED) {
			printf("FAIL dma arena: no memory below 4 GiB\n");
			exit(1);
		}
		arena = p;
	}
	used = (used + align - 1) / align * align;
	if (used + bytes > size)
		return NULL;
	void *p = arena + used;
	used += bytes;
	memset(p, 0, bytes);
	return p;
}
void dma_free(void *p, size_t bytes) { (void)p; (void)bytes; }
void *kzalloc(size_t n) { return calloc(1, n); }
void kfree(void *p) { free(p); }
volatile void *pci_bar_ptr(struct pci_dev *d, int bar) { (void)d; (void)bar; return NULL; }
void pci_enable(struct pci_dev *d, bool mem, bool io, bool master) { (void)d; (void)mem; (void)io; (void)master; }
uint8_t pci_find_cap(struct pci_dev *d, uint8_t cap_id, uint8_t after) { (void)d; (void)cap_id; (void)after; return 0; }
uint8_t pci_read8(struct pci_dev *d, uint16_t off) { (void)d; (void)off; return 0; }
uint32_t pci_read32(struct pci_dev *d, uint16_t off) { (void)d; (void)off; return 0; }

static uint64_t t_now(void) { return now_us; }
static void *t_alloc(size_t n) { return calloc(1, n); }
static uint32_t t_random(void) { return 4; }
static void t_log(int level, const char *msg) { (void)level; (void)msg; }
static const struct net_env env = { t_now, t_alloc, free, t_random, t_log };

/* ---- helpers -------------------------------------------------------------------------------- */
static const uint8_t PEER_MAC[6] = { 0x02, 0, 0, 0, 0, 0x99 };
static const uint8_t OUR_MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
#define OUR_IP  0x0a00020fu   /* 10.0.2.15 */
#define PEER_IP 0x0a000202u   /* 10.0.2.2 */

static void fake_init(void)
{
	memset(&F, 0, sizeof(F));
	memcpy(F.mac, OUR_MAC, 6);
	F.net_status = LINK_UP;
	F.status = 0x7f;   /* whatever the firmware left */
	fake_logs[0] = '\0';
}

/* An ARP request "who has 10.0.2.15, tell 10.0.2.2" arrives. */
static void arp_request_arrives(void)
{
	arp_request_frame(F.rx_frame, PEER_MAC, PEER_IP, OUR_IP);
	F.rx_len = ARP_FRAME_BYTES;
}

static bool is_arp_reply_to_peer(int k)
{
	return k < F.nsent && arp_is_reply(F.sent[k], F.sent_len[k], PEER_MAC, OUR_MAC, OUR_IP, PEER_IP);
}

/* Polls the interface for `ms` of fake time, in 10 ms steps. */
static void run_ms(struct netif *ifc, uint32_t ms)
{
	uint64_t end = now_us + (uint64_t)ms * 1000;
	while (now_us < end) {
		ifc->ops->poll(ifc);
		now_us += 10000;
	}
	ifc->ops->poll(ifc);
}

/* Both queues are where the driver's rings are, every receive buffer offered, the device live. */
static bool rings_rebuilt(const struct vnet *v)
{
	return F.pfn[0] == (uint32_t)(dma_addr(v->rx.q.ring) >> 12) &&
	       F.pfn[1] == (uint32_t)(dma_addr(v->tx.q.ring) >> 12) && fq_avail(0)[1] == RX_BUFS &&
	       F.last_avail[1] == fq_avail(1)[1] && v->tx_pending == 0 && (F.status & S_DRIVER_OK) &&
	       F.guest_features == (uint32_t)(F_MAC | F_STATUS);
}

int main(void)
{
	net_init(&env);
	static struct pci_dev pci = { .vendor = 0x1af4, .device = 0x1000,
				      .bar = { IO_BASE }, .bar_size = { 0x20 }, .bar_is_io = { true } };

	fake_init();
	CHECK("a legacy virtio-net device binds", vnet_probe(&pci) == 0 && net_count() == 1);
	struct netif *ifc = net_get(0);
	struct vnet *v = ifc->drv;
	CHECK("the MAC and the link come from the device config, both queues are set up",
	      !memcmp(ifc->mac, OUR_MAC, 6) && ifc->link && !strcmp(ifc->driver, "virtio-net (legacy)") &&
	      v->hdr_len == HDR && F.resets == 1 && rings_rebuilt(v));
	net_set_static(ifc, OUR_IP, 0xffffff00u, 0);

	arp_request_arrives();
	run_ms(ifc, 50);
	CHECK("a frame in the receive queue reaches the stack and its answer leaves through the transmit queue",
	      F.nsent == 1 && is_arp_reply_to_peer(0) && v->tx_pending == 0 && ifc->ctr.rx_frames == 1);

	/* The transmit queue stops completing. */
	F.tx_stalled = F.stall_ends_at_reset = true;
	arp_request_arrives();
	run_ms(ifc, 50);
	CHECK("a stalled queue keeps the frame pending", F.nsent == 1 && v->tx_pending == 1);
	run_ms(ifc, VNET_TX_TIMEOUT_MS - 300);
	CHECK("no reset before VNET_TX_TIMEOUT_MS without a completion",
	      F.resets == 1 && ifc->ctr.resets == 0 && !strstr(fake_logs, "stuck"));
	run_ms(ifc, 400);
	CHECK("past VNET_TX_TIMEOUT_MS the device is reset, once, and says so",
	      F.resets == 2 && ifc->ctr.resets == 1 &&
	      strstr(fake_logs, "eth0: transmit ring stuck for 2000 ms; resetting the NIC"));
	CHECK("the queues are rebuilt: at the driver's rings, every receive buffer offered, nothing pending, link up",
	      rings_rebuilt(v) && ifc->link && !memcmp(ifc->mac, OUR_MAC, 6));
	arp_request_arrives();
	run_ms(ifc, 50);
	CHECK("after the reset traffic flows again: the next request is answered and reaped",
	      F.nsent == 2 && is_arp_reply_to_peer(1) && v->tx_pending == 0);

	/* An idle queue is not a stuck one. */
	run_ms(ifc, 3 * VNET_TX_TIMEOUT_MS);
	CHECK("an idle queue is never reset", F.resets == 2 && ifc->ctr.resets == 1);

	/* Stuck again, and this time the reset itself never ends: the status never reads zero. */
	F.tx_stalled = true;
	F.stall_ends_at_reset = false;
	F.status_sticks = true;
	fake_logs[0] = '\0';
	arp_request_arrives();
	run_ms(ifc, VNET_TX_TIMEOUT_MS + 200);
	CHECK("a reset that never completes takes the link down and says why",
	      ifc->ctr.resets == 2 && !ifc->link &&
	      strstr(fake_logs, "eth0: re-initialisation failed: ") && strstr(fake_logs, "link down, retrying every 2000 ms"));
	run_ms(ifc, 1000);
	CHECK("the link poll does not bring the link back on the half-initialised device (its status says up)",
	      ifc->ctr.resets == 2 && !ifc->link && (F.net_status & LINK_UP) && !strstr(fake_logs, "eth0: link up"));
	int sent = F.nsent;
	CHECK("nothing is sent while the link is down", ifc->ops->send(ifc, F.rx_frame, 60) == -E_BUSY);
	run_ms(ifc, VNET_TX_TIMEOUT_MS);
	CHECK("the reset is retried every VNET_TX_TIMEOUT_MS; the link stays down while it fails",
	      ifc->ctr.resets == 3 && !ifc->link && strstr(fake_logs, "eth0: resetting the NIC again"));
	F.status_sticks = false;
	F.stall_ends_at_reset = true;   /* the wedged device's old rings never move again */
	run_ms(ifc, VNET_TX_TIMEOUT_MS + 1500);
	CHECK("a retried reset that works rebuilds the queues and the link comes back",
	      ifc->ctr.resets == 4 && ifc->link && strstr(fake_logs, "eth0: the NIC is back after a reset") &&
	      strstr(fake_logs, "eth0: link up") && rings_rebuilt(v) && F.nsent == sent);
	arp_request_arrives();
	run_ms(ifc, 50);
	CHECK("after it traffic flows: the next request is answered and reaped",
	      F.nsent == sent + 1 && is_arp_reply_to_peer(sent) && v->tx_pending == 0);
	run_ms(ifc, 3 * VNET_TX_TIMEOUT_MS);
	CHECK("once back, an idle queue is left alone", ifc->ctr.resets == 4 && ifc->link);

	/* A device that never finishes its reset is not bound. */
	fake_init();
	F.status_sticks = true;
	uint64_t t0 = now_us;
	int rc = vnet_probe(&pci);
	CHECK("a reset that never completes fails the probe after VIRTIO_RESET_TIMEOUT_MS",
	      rc == -E_TIMEOUT && net_count() == 1 && now_us - t0 >= VIRTIO_RESET_TIMEOUT_MS * 1000ULL);
	return CHECK_DONE();
}
