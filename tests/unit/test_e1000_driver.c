/* The e1000/e1000e driver against a fake 82540EM/82574L on the host, for what QEMU 7.2 cannot
 * show: a transmit ring that stops completing (QEMU's NICs always complete) is reset after
 * E1000_TX_TIMEOUT_MS and not before, the rings are rebuilt and traffic flows again through the
 * real stack (ARP answered); an idle ring is never reset; a reset that never ends takes the link
 * down; the MAC from RAL0/RAH0 or, without it, from the EEPROM in each part's EERD layout; a
 * reset or EEPROM read that never completes fails the probe. The fake runs whenever the driver
 * reads the clock, which every wait of the driver does. */
#include "../../drivers/e1000.c"
#include "../lib/arp_frames.h"
#include "../lib/check.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the fake NIC --------------------------------------------------------------------------- */
static struct {
	uint8_t regs[0x8000] __attribute__((aligned(4096)));
	bool is_82574;
	uint16_t eeprom[64];
	bool mac_in_ral;          /* the part loaded RAL0/RAH0 from the EEPROM at reset */
	bool link;
	bool tx_stalled;          /* descriptors are not processed ... */
	bool stall_ends_at_reset; /* ... until the next reset */
	bool rst_sticks;          /* CTRL.RST never clears */
	bool eerd_dead;           /* EERD never reports done */
	uint8_t sent[16][2048];
	uint32_t sent_len[16];
	int nsent;
	uint8_t rx_frame[2048];
	uint32_t rx_len;          /* a frame waiting to be received, 0 when none */
	int resets;
} F;

static uint64_t now_us = 1000000;
static uint32_t reg_get(unsigned o) { uint32_t v; memcpy(&v, F.regs + o, 4); return v; }
static void reg_set(unsigned o, uint32_t v) { memcpy(F.regs + o, &v, 4); }

static void load_mac_regs(void)
{
	if (!F.mac_in_ral) {
		reg_set(RAL0, 0);
		reg_set(RAH0, 0);
		return;
	}
	reg_set(RAL0, (uint32_t)F.eeprom[0] | (uint32_t)F.eeprom[1] << 16);
	reg_set(RAH0, F.eeprom[2] | RAH_AV);
}

static void fake_reset(void)
{
	for (unsigned o = RCTL; o < sizeof(F.regs); o += 4)
		if (o != RAL0 && o != RAH0)
			reg_set(o, 0);
	load_mac_regs();
	F.resets++;
	if (F.stall_ends_at_reset)
		F.tx_stalled = false;
}

static void fake_step(void)
{
	uint32_t ctrl = reg_get(CTRL);
	if ((ctrl & CTRL_RST) && !F.rst_sticks) {
		reg_set(CTRL, ctrl & ~CTRL_RST);
		fake_reset();
	}
	reg_set(STATUS, F.link ? STATUS_LU : 0);
	uint32_t eerd = reg_get(EERD);
	uint32_t done = F.is_82574 ? 1u << 1 : 1u << 4;
	if ((eerd & 1) && !(eerd & done) && !F.eerd_dead) {
		uint32_t addr = F.is_82574 ? (eerd >> 2) & 0x3fff : (eerd >> 8) & 0xff;
		reg_set(EERD, (addr < 64 ? (uint32_t)F.eeprom[addr] << 16 : 0) | done | (eerd & 0xffff));
	}
	uint32_t tdlen = reg_get(TDLEN) / 16, rdlen = reg_get(RDLEN) / 16;
	uint64_t tdba = (uint64_t)reg_get(TDBAH) << 32 | reg_get(TDBAL);
	uint64_t rdba = (uint64_t)reg_get(RDBAH) << 32 | reg_get(RDBAL);
	if ((reg_get(TCTL) & TCTL_EN) && tdlen && !F.tx_stalled) {
		while (reg_get(TDH) != reg_get(TDT) % tdlen) {
			struct tx_desc *d = (struct tx_desc *)(uintptr_t)tdba + reg_get(TDH);
			if (F.nsent < 16) {
				memcpy(F.sent[F.nsent], (void *)(uintptr_t)d->addr, d->len);
				F.sent_len[F.nsent++] = d->len;
			}
			d->status |= DD;
			reg_set(TDH, (reg_get(TDH) + 1) % tdlen);
		}
	}
	if ((reg_get(RCTL) & RCTL_EN) && rdlen && F.rx_len && reg_get(RDH) != reg_get(RDT)) {
		struct rx_desc *d = (struct rx_desc *)(uintptr_t)rdba + reg_get(RDH);
		memcpy((void *)(uintptr_t)d->addr, F.rx_frame, F.rx_len);
		d->len = (uint16_t)F.rx_len;
		d->errors = 0;
		d->status = DD | RX_EOP;
		reg_set(RDH, (reg_get(RDH) + 1) % rdlen);
		F.rx_len = 0;
	}
}

/* ---- what the driver needs from the kernel -------------------------------------------------- */
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
void *dma_alloc(size_t bytes, size_t align) { void *p = aligned_alloc(align, (bytes + align - 1) / align * align); memset(p, 0, bytes); return p; }
void dma_free(void *p, size_t bytes) { (void)bytes; free(p); }
void *kzalloc(size_t n) { return calloc(1, n); }
void kfree(void *p) { free(p); }
volatile void *pci_bar_ptr(struct pci_dev *d, int bar) { (void)d; (void)bar; return F.regs; }
void pci_enable(struct pci_dev *d, bool mem, bool io, bool master) { (void)d; (void)mem; (void)io; (void)master; }

static uint64_t t_now(void) { return now_us; }
static void *t_alloc(size_t n) { return calloc(1, n); }
static uint32_t t_random(void) { return 4; }
static void t_log(int level, const char *msg) { (void)level; (void)msg; }
static const struct net_env env = { t_now, t_alloc, free, t_random, t_log };

/* ---- helpers -------------------------------------------------------------------------------- */
static const uint8_t PEER_MAC[6] = { 0x02, 0, 0, 0, 0, 0x99 };
#define OUR_IP  0x0a00030fu   /* 10.0.3.15 */
#define PEER_IP 0x0a000302u   /* 10.0.3.2 */

static void fake_init(bool is_82574, bool mac_in_ral)
{
	memset(&F, 0, sizeof(F));
	F.is_82574 = is_82574;
	F.mac_in_ral = mac_in_ral;
	F.link = true;
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	for (int i = 0; i < 3; i++)
		F.eeprom[i] = (uint16_t)(mac[2 * i] | mac[2 * i + 1] << 8);
	load_mac_regs();
	fake_logs[0] = '\0';
}

/* An ARP request "who has 10.0.3.15, tell 10.0.3.2" arrives. */
static void arp_request_arrives(void)
{
	arp_request_frame(F.rx_frame, PEER_MAC, PEER_IP, OUR_IP);
	F.rx_len = ARP_FRAME_BYTES;
}

static bool is_arp_reply_to_peer(int k)
{
	return k < F.nsent && arp_is_reply(F.sent[k], F.sent_len[k], PEER_MAC, NULL, OUR_IP, PEER_IP);
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

int main(void)
{
	net_init(&env);
	static struct pci_dev pci = { .vendor = 0x8086, .device = 0x100e };

	/* The 82540EM with its MAC in RAL0/RAH0, as QEMU's e1000 and most firmware leave it. */
	fake_init(false, true);
	CHECK("the 82540EM binds", e1k_probe(&pci) == 0 && net_count() == 1);
	struct netif *ifc = net_get(0);
	struct e1k *e = ifc->drv;
	static const uint8_t want_mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	CHECK("the MAC comes from RAL0/RAH0, the link from STATUS.LU",
	      !memcmp(ifc->mac, want_mac, 6) && ifc->link && !strcmp(ifc->driver, "e1000 (82540EM)"));
	net_set_static(ifc, OUR_IP, 0xffffff00u, 0);

	arp_request_arrives();
	run_ms(ifc, 50);
	CHECK("a frame in the receive ring reaches the stack and its answer leaves through the transmit ring",
	      F.nsent == 1 && is_arp_reply_to_peer(0) && e->tx_pending == 0 && ifc->ctr.rx_frames == 1);

	/* The transmit ring stops completing. */
	int resets0 = F.resets;
	F.tx_stalled = F.stall_ends_at_reset = true;
	arp_request_arrives();
	run_ms(ifc, 50);
	CHECK("a stalled ring keeps the frame pending", F.nsent == 1 && e->tx_pending == 1);
	run_ms(ifc, E1000_TX_TIMEOUT_MS - 300);
	CHECK("no reset before E1000_TX_TIMEOUT_MS without a completion",
	      F.resets == resets0 && ifc->ctr.resets == 0 && !strstr(fake_logs, "stuck"));
	run_ms(ifc, 400);
	CHECK("past E1000_TX_TIMEOUT_MS the NIC is reset, once, and says so",
	      F.resets == resets0 + 1 && ifc->ctr.resets == 1 &&
	      strstr(fake_logs, "eth0: transmit ring stuck for 2000 ms; resetting the NIC"));
	uint64_t tdba = (uint64_t)reg_get(TDBAH) << 32 | reg_get(TDBAL);
	CHECK("the rings are rebuilt: empty, at their addresses, transmit and receive enabled, link up",
	      e->tx_pending == 0 && tdba == dma_addr((const void *)e->tx) && reg_get(TDH) == 0 &&
	      reg_get(TDT) == 0 && reg_get(RDT) == RX_N - 1 && (reg_get(TCTL) & TCTL_EN) &&
	      (reg_get(RCTL) & RCTL_EN) && ifc->link && !memcmp(ifc->mac, want_mac, 6));
	arp_request_arrives();
	run_ms(ifc, 50);
	CHECK("after the reset traffic flows again: the next request is answered and reaped",
	      F.nsent == 2 && is_arp_reply_to_peer(1) && e->tx_pending == 0);

	/* An idle ring is not a stuck one. */
	run_ms(ifc, 3 * E1000_TX_TIMEOUT_MS);
	CHECK("an idle ring is never reset", F.resets == resets0 + 1 && ifc->ctr.resets == 1);

	/* Stuck again, and this time the reset itself never ends. */
	F.tx_stalled = true;
	F.stall_ends_at_reset = false;
	F.rst_sticks = true;
	arp_request_arrives();
	run_ms(ifc, E1000_TX_TIMEOUT_MS + 200);
	CHECK("a reset that never completes takes the link down and says why",
	      ifc->ctr.resets == 2 && !ifc->link && strstr(fake_logs, "eth0: re-initialisation failed: "));
	run_ms(ifc, E1000_TX_TIMEOUT_MS + 200);
	CHECK("the link stays down while the reset keeps failing; it is retried",
	      ifc->ctr.resets == 3 && !ifc->link);
	F.rst_sticks = false;
	F.tx_stalled = false;
	run_ms(ifc, E1000_TX_TIMEOUT_MS + 500);
	int sent = F.nsent;
	arp_request_arrives();
	run_ms(ifc, 50);
	CHECK("when a retried reset works the link is up again and traffic flows",
	      ifc->ctr.resets == 4 && ifc->link && strstr(fake_logs, "eth0: the NIC is back after a reset") &&
	      F.nsent == sent + 1 && is_arp_reply_to_peer(sent) && e->tx_pending == 0);

	/* The 82574L with RAL0/RAH0 empty: the MAC from the EEPROM in its EERD layout. */
	fake_init(true, false);
	static struct pci_dev pci2 = { .vendor = 0x8086, .device = 0x10d3 };
	CHECK("the 82574L binds with its MAC read from the EEPROM",
	      e1k_probe(&pci2) == 0 && net_count() == 2 && !memcmp(net_get(1)->mac, want_mac, 6) &&
	      !strcmp(net_get(1)->driver, "e1000e (82574L)"));
	fake_init(false, false);
	CHECK("the 82540EM reads the EEPROM in its own layout",
	      e1k_probe(&pci) == 0 && net_count() == 3 && !memcmp(net_get(2)->mac, want_mac, 6));

	/* A part that never finishes its reset or its EEPROM read is not bound. */
	fake_init(false, true);
	F.rst_sticks = true;
	reg_set(CTRL, 0);
	uint64_t t0 = now_us;
	int rc = e1k_probe(&pci);
	CHECK("a reset that never completes fails the probe after E1000_RESET_TIMEOUT_MS",
	      rc == -E_TIMEOUT && net_count() == 3 && now_us - t0 >= E1000_RESET_TIMEOUT_MS * 1000ULL);
	fake_init(true, false);
	F.eerd_dead = true;
	CHECK("an EEPROM that never answers fails the probe", e1k_probe(&pci2) == -E_TIMEOUT && net_count() == 3);
	return CHECK_DONE();
}
