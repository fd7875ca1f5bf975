/* Intel gigabit NICs with the e1000 register model: the 82540EM (e1000) and the 82574L
 * (e1000e), which share the registers and the legacy descriptor format this driver uses. Polled
 * receive and transmit rings, the MAC from the receive-address registers (EEPROM as a fallback),
 * link from STATUS, and a full reset when the transmit ring stops moving. The I217/I218/I219
 * LAN-on-motherboard parts need more (docs/network.md). */
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../net/net.h"
#include "../kernel/pci.h"
#include "../kernel/time.h"

#define E1000_RESET_TIMEOUT_MS   100u
#define E1000_EEPROM_TIMEOUT_MS   10u
#define E1000_TX_TIMEOUT_MS     2000u   /* frames queued this long with no completion: reset */
#define E1000_LINK_POLL_MS       200u
#define E1000_LINK_UP_TIMEOUT_MS 500u   /* at probe: auto-negotiation, so `net` is right at once */

enum {
	CTRL = 0x0000, STATUS = 0x0008, EERD = 0x0014, ICR = 0x00c0, IMC = 0x00d8,
	RCTL = 0x0100, TCTL = 0x0400, TIPG = 0x0410,
	RDBAL = 0x2800, RDBAH = 0x2804, RDLEN = 0x2808, RDH = 0x2810, RDT = 0x2818,
	TDBAL = 0x3800, TDBAH = 0x3804, TDLEN = 0x3808, TDH = 0x3810, TDT = 0x3818,
	MTA = 0x5200, RAL0 = 0x5400, RAH0 = 0x5404,
};
#define CTRL_LRST   (1u << 3)
#define CTRL_ASDE   (1u << 5)
#define CTRL_SLU    (1u << 6)
#define CTRL_ILOS   (1u << 7)
#define CTRL_RST    (1u << 26)
#define CTRL_VME    (1u << 30)
#define CTRL_PHYRST (1u << 31)
#define STATUS_LU   (1u << 1)
#define RCTL_EN     (1u << 1)
#define RCTL_BAM    (1u << 15)
#define RCTL_SECRC  (1u << 26)
#define TCTL_EN     (1u << 1)
#define TCTL_PSP    (1u << 3)
#define RAH_AV      (1u << 31)
#define TX_EOP 0x01u
#define TX_IFCS 0x02u
#define TX_RS  0x08u
#define DD     0x01u
#define RX_EOP 0x02u

#define RX_N 64
#define TX_N 64
#define BUF_SIZE 2048

struct rx_desc { uint64_t addr; uint16_t len, csum; uint8_t status, errors; uint16_t special; };
struct tx_desc { uint64_t addr; uint16_t len; uint8_t cso, cmd, status, css; uint16_t special; };

struct e1k {
	struct netif ifc;
	struct pci_dev *pci;
	volatile uint8_t *mmio;
	bool is_82574;
	volatile struct rx_desc *rx;
	volatile struct tx_desc *tx;
	uint8_t *rxbuf, *txbuf;
	uint32_t rx_next, tx_tail, tx_clean, tx_pending;
	uint64_t tx_progress_us;
	deadline_t next_link_check;
	bool broken;              /* the last reset failed: link down, the reset retried */
};

static uint32_t rd(struct e1k *e, uint32_t r) { return mmio_read32(e->mmio + r); }
static void wr(struct e1k *e, uint32_t r, uint32_t v) { mmio_write32(e->mmio + r, v); }
static volatile uint32_t *reg(struct e1k *e, uint32_t r) { return (volatile uint32_t *)(e->mmio + r); }

/* One EEPROM word through EERD (the two parts place the fields differently). */
static int eeprom_word(struct e1k *e, uint32_t addr, uint16_t *out)
{
	uint32_t start = e->is_82574 ? (addr << 2) | 1 : (addr << 8) | 1;
	uint32_t done = e->is_82574 ? 1u << 1 : 1u << 4;
	wr(e, EERD, start);
	if (wait_bits32(reg(e, EERD), done, done, E1000_EEPROM_TIMEOUT_MS) < 0)
		return -E_TIMEOUT;
	*out = (uint16_t)(rd(e, EERD) >> 16);
	return 0;
}

static int read_mac(struct e1k *e)
{
	uint32_t lo = rd(e, RAL0), hi = rd(e, RAH0);
	if ((hi & RAH_AV) && (lo || (hi & 0xffff))) {
		for (int i = 0; i < 4; i++)
			e->ifc.mac[i] = (uint8_t)(lo >> (8 * i));
		e->ifc.mac[4] = (uint8_t)hi;
		e->ifc.mac[5] = (uint8_t)(hi >> 8);
		return 0;
	}
	for (uint32_t w = 0; w < 3; w++) {
		uint16_t v;
		int rc = eeprom_word(e, w, &v);
		if (rc < 0)
			return rc;
		e->ifc.mac[2 * w] = (uint8_t)v;
		e->ifc.mac[2 * w + 1] = (uint8_t)(v >> 8);
	}
	return 0;
}

/* Reset, then rings, receive and transmit on. Probe and recovery. */
static int e1k_init_device(struct e1k *e)
{
	wr(e, IMC, 0xffffffffu);
	wr(e, RCTL, 0);
	wr(e, TCTL, 0);
	wr(e, CTRL, rd(e, CTRL) | CTRL_RST);
	time_delay_us(1000);
	if (wait_bits32(reg(e, CTRL), CTRL_RST, 0, E1000_RESET_TIMEOUT_MS) < 0)
		return -E_TIMEOUT;
	wr(e, IMC, 0xffffffffu);   /* polled: no interrupts */
	(void)rd(e, ICR);
	uint32_t ctrl = rd(e, CTRL);
	ctrl &= ~(CTRL_LRST | CTRL_ILOS | CTRL_VME | CTRL_PHYRST);
	wr(e, CTRL, ctrl | CTRL_SLU | CTRL_ASDE);
	int rc = read_mac(e);
	if (rc < 0)
		return rc;
	/* Our address in slot 0 (it may have come from the EEPROM), no multicast. */
	const uint8_t *m = e->ifc.mac;
	wr(e, RAL0, (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24);
	wr(e, RAH0, (uint32_t)m[4] | (uint32_t)m[5] << 8 | RAH_AV);
	for (uint32_t i = 0; i < 128; i++)
		wr(e, MTA + 4 * i, 0);

	if (!e->rx) {
		e->rx = dma_alloc(sizeof(struct rx_desc) * RX_N, 128);
		e->tx = dma_alloc(sizeof(struct tx_desc) * TX_N, 128);
		e->rxbuf = dma_alloc((size_t)RX_N * BUF_SIZE, 4096);
		e->txbuf = dma_alloc((size_t)TX_N * BUF_SIZE, 4096);
		if (!e->rx || !e->tx || !e->rxbuf || !e->txbuf)
			return -E_NOMEM;
	}
	for (int i = 0; i < RX_N; i++)
		e->rx[i] = (struct rx_desc){ .addr = dma_addr(e->rxbuf + (size_t)i * BUF_SIZE) };
	memset((void *)e->tx, 0, sizeof(struct tx_desc) * TX_N);
	e->rx_next = e->tx_tail = e->tx_clean = e->tx_pending = 0;
	wr(e, RDBAL, (uint32_t)dma_addr((const void *)e->rx));
	wr(e, RDBAH, (uint32_t)(dma_addr((const void *)e->rx) >> 32));
	wr(e, RDLEN, sizeof(struct rx_desc) * RX_N);
	wr(e, RDH, 0);
	wr(e, RDT, RX_N - 1);
	wr(e, TDBAL, (uint32_t)dma_addr((const void *)e->tx));
	wr(e, TDBAH, (uint32_t)(dma_addr((const void *)e->tx) >> 32));
	wr(e, TDLEN, sizeof(struct tx_desc) * TX_N);
	wr(e, TDH, 0);
	wr(e, TDT, 0);
	wr(e, TIPG, 10u | 8u << 10 | 6u << 20);   /* copper: IPGT 10, IPGR1 8, IPGR2 6 */
	wr(e, TCTL, TCTL_EN | TCTL_PSP | 0x0fu << 4 | 0x40u << 12);   /* CT 15, COLD 64 */
	wr(e, RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);               /* 2048-byte buffers */
	return 0;
}

static void tx_reap(struct e1k *e)
{
	while (e->tx_pending && (e->tx[e->tx_clean].status & DD)) {
		e->tx[e->tx_clean].status = 0;
		e->tx_clean = (e->tx_clean + 1) % TX_N;
		e->tx_pending--;
		e->tx_progress_us = time_now_us();
	}
}

static int e1k_send(struct netif *ifc, const void *frame, uint32_t len)
{
	struct e1k *e = ifc->drv;
	tx_reap(e);
	if (len > NET_FRAME_MAX || !ifc->link || e->tx_pending == TX_N - 1)
		return -E_BUSY;
	uint32_t i = e->tx_tail;
	uint8_t *b = e->txbuf + (size_t)i * BUF_SIZE;
	memcpy(b, frame, len);
	e->tx[i] = (struct tx_desc){ .addr = dma_addr(b), .len = (uint16_t)len, .cmd = TX_EOP | TX_IFCS | TX_RS };
	if (!e->tx_pending)
		e->tx_progress_us = time_now_us();
	e->tx_pending++;
	e->tx_tail = (i + 1) % TX_N;
	mmio_barrier();
	wr(e, TDT, e->tx_tail);
	return 0;
}

static void e1k_poll(struct netif *ifc)
{
	struct e1k *e = ifc->drv;
	for (int budget = 0; budget < RX_N; budget++) {
		volatile struct rx_desc *d = &e->rx[e->rx_next];
		if (!(d->status & DD))
			break;
		__asm__ __volatile__("" ::: "memory");
		uint16_t len = d->len;
		/* Frames spanning buffers (EOP missing) or with errors are dropped and counted. */
		if ((d->status & RX_EOP) && !d->errors && len <= BUF_SIZE)
			net_input(ifc, e->rxbuf + (size_t)e->rx_next * BUF_SIZE, len);
		else
			ifc->ctr.bad_eth++;
		d->status = 0;
		wr(e, RDT, e->rx_next);   /* the buffer goes back behind the head */
		e->rx_next = (e->rx_next + 1) % RX_N;
	}
	tx_reap(e);
	if ((e->tx_pending || e->broken) && time_now_us() - e->tx_progress_us > E1000_TX_TIMEOUT_MS * 1000ULL) {
		if (e->broken)
			log_event(LOG_WARN, "%s: resetting the NIC again", ifc->name);
		else
			log_event(LOG_WARN, "%s: transmit ring stuck for %u ms; resetting the NIC", ifc->name,
				  E1000_TX_TIMEOUT_MS);
		ifc->ctr.resets++;
		int rc = e1k_init_device(e);
		if (rc < 0) {
			if (!e->broken)
				log_event(LOG_ERR, "%s: re-initialisation failed: %s; link down, retrying every %u ms",
					  ifc->name, err_str(rc), E1000_TX_TIMEOUT_MS);
			ifc->link = false;
		} else if (e->broken) {
			log_event(LOG_INFO, "%s: the NIC is back after a reset", ifc->name);
		}
		e->broken = rc < 0;
		e->tx_progress_us = time_now_us();
	}
	/* A NIC whose reset failed keeps its link down whatever STATUS says, until a reset works. */
	if (!e->broken && deadline_passed(e->next_link_check)) {
		e->next_link_check = deadline_in_ms(E1000_LINK_POLL_MS);
		bool up = (rd(e, STATUS) & STATUS_LU) != 0;
		if (up != ifc->link) {
			ifc->link = up;
			log_event(up ? LOG_INFO : LOG_WARN, "%s: link %s", ifc->name, up ? "up" : "down");
		}
	}
}

static const struct netif_ops e1k_ops = { .send = e1k_send, .poll = e1k_poll };

static bool e1k_match(const struct pci_dev *p)
{
	return p->vendor == 0x8086 && (p->device == 0x100e || p->device == 0x10d3);
}

static int e1k_probe(struct pci_dev *p)
{
	struct e1k *e = kzalloc(sizeof(*e));
	if (!e)
		return -E_NOMEM;
	e->pci = p;
	e->is_82574 = p->device == 0x10d3;
	pci_enable(p, true, false, true);
	e->mmio = pci_bar_ptr(p, 0);
	int rc = e->mmio ? e1k_init_device(e) : -E_UNSUPP;
	if (rc < 0) {
		kfree(e);   /* rings, if allocated, stay: a failed probe happens once per device */
		return rc;
	}
	struct netif *ifc = &e->ifc;
	ifc->drv = e;
	ifc->ops = &e1k_ops;
	ifc->pci_bus = p->bus;
	ifc->pci_dev = p->dev;
	ifc->pci_fn = p->fn;
	ifc->driver = e->is_82574 ? "e1000e (82574L)" : "e1000 (82540EM)";
	rc = net_register(ifc);
	if (rc < 0) {
		wr(e, RCTL, 0);
		wr(e, TCTL, 0);
		return rc;
	}
	/* Link comes up after auto-negotiation; a link still down then is reported as down. */
	(void)wait_bits32(reg(e, STATUS), STATUS_LU, STATUS_LU, E1000_LINK_UP_TIMEOUT_MS);
	ifc->link = (rd(e, STATUS) & STATUS_LU) != 0;
	const uint8_t *m = ifc->mac;
	kprintf("%s: %s at pci %02x:%02x.%x, mac %02x:%02x:%02x:%02x:%02x:%02x, link %s\n", ifc->name,
		ifc->driver, p->bus, p->dev, p->fn, m[0], m[1], m[2], m[3], m[4], m[5], ifc->link ? "up" : "down");
	return 0;
}
PCI_DRIVER(e1000, "e1000", e1k_match, e1k_probe);
