/* The xHCI, USB core and mass storage drivers against a fake controller with one Bulk-Only disk
 * on the host, for what QEMU 7.2 cannot show: the USB Legacy Support hand-off (a firmware that
 * lets go and one that does not), scratchpad buffers, 64-byte contexts, a USB2 port reset, a
 * wrong CSW, a stalled data stage with the failing LBA in the sense data, a command that never
 * answers (the recovery ladder), a plug-in of a bridge deaf to ATA PASS-THROUGH on the USB
 * task, the poll loop never held long, and hubs QEMU has not: two SuperSpeed hubs deep, and a
 * high-speed hub (multi-TT or not) whose transaction translator reaches a full-speed disk. The fake runs whenever the drivers read the clock, which
 * every wait of theirs does; it walks its rings by their cycle bits (it cannot see doorbell
 * writes). The USB task runs on a stack of its own (ucontext); its yields come back to run_loop. */
#include "../../drivers/xhci.c"
#include "../../drivers/usb.c"
#include "../../drivers/usb_msc.c"
#include "../lib/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>

/* ---- the fake controller ------------------------------------------------------------------ */
#define F_CAPLEN 0x40
#define F_XECP   0x1000
#define F_RT     0x2000
#define F_DB     0x3000
#define F_SECTORS 2048

struct fring { uint64_t deq; uint32_t cycle; bool on; };
struct fep { struct fring r; unsigned state; };

/* A hub between a root port and the disk, for what QEMU's full-speed usb-hub cannot show: a
 * SuperSpeed hub (descriptor 0x2A, SET_HUB_DEPTH, USB3 port status) or a high-speed one whose
 * transaction translator reaches a full-speed disk. The fake tells its devices apart by the
 * root port, route string and speed the driver puts in each Address Device slot context. */
struct fhub {
	bool usb3;                   /* SuperSpeed; else high speed */
	bool mtt;                    /* high speed with a multi-TT interface (alternate setting 1) */
	uint8_t root_port, speed, nports, tt_think;
	uint32_t route;
	int child_hub[8];            /* the hub on port p (index + 1), 0 when none */
	uint8_t disk_port;           /* the port the disk is on, 0 when elsewhere */
	bool powered[8];
	uint16_t st[8], ch[8];       /* wPortStatus, wPortChange */
	unsigned slot;
	uint64_t out_ctx;
	struct fep ep0;
	uint32_t addr_sc[4], hub_sc[4];   /* slot context at Address Device, at Configure Endpoint */
	bool hub_configured, mtt_on;
	int depth_set;               /* SET_HUB_DEPTH's value, -1 when never sent */
	int port_resets, bad_requests;
};

static struct {
	uint8_t mmio[0x4000] __attribute__((aligned(4096)));
	bool running;
	unsigned csz, nscratch;
	bool bios_lets_go;
	int bios_steps;
	struct fring cmd;
	uint64_t evt_base;
	unsigned evt_size, evt_pos;
	uint32_t evt_cycle;
	struct fep ep[32];            /* of the one device (slot 1) */
	uint64_t out_ctx;
	bool connected, port_enabled;
	uint32_t port_changes;
	/* The disk behind the BOT interface. */
	uint8_t disk[F_SECTORS * 512];
	enum { B_CBW, B_DATA_IN, B_DATA_OUT, B_CSW } bot;
	uint8_t cbw[31];
	uint8_t data[65536];
	uint32_t data_len, data_pos;
	uint8_t csw_status;
	uint8_t sense[32];
	bool smart_failing;
	bool smart_bad_sum, smart_refused;   /* SMART READ DATA: a wrong checksum, a bridge that refuses it */
	uint64_t out_lba;
	bool bad_csw_once;
	uint64_t stall_lba, hang_lba;
	bool hanging;
	bool deaf_to_bot_reset;      /* a bridge that only a port reset brings back */
	bool dead;                   /* stalls every request, even after a port reset */
	uint64_t ready_at;           /* TEST UNIT READY says "becoming ready" until this time */
	int turs;
	bool tur_hangs;              /* TEST UNIT READY never answers (its CSW does not come) */
	bool sat_deaf;               /* ATA PASS-THROUGH never answers (a bridge without SAT); a BOT reset ends it */
	int bot_resets, clear_halts, port_resets;
	/* Where the disk is (root port 2, high speed, on no hub unless a scenario says so). */
	uint8_t disk_root_port, disk_speed;
	uint32_t disk_route;
	unsigned disk_slot, enabled_slot;
	uint32_t slots_used;
	uint32_t disk_sc[4];         /* its slot context at Address Device */
	struct fhub hub[2];
	unsigned nhubs;
	bool root1_connected;        /* a SuperSpeed hub on root port 1 */
	uint32_t root1_changes;
} F;

static uint64_t now_us;
static uint32_t rd(unsigned o) { uint32_t v; memcpy(&v, F.mmio + o, 4); return v; }
static void port_write(void);
static void port1_write(void);

/* The register page (capability, operational, port registers) is read-only: a driver write
 * faults, is let through for one instruction (single step), and a write to PORTSC then gets its
 * semantics (write-1-to-clear change bits, PR) from port_write(). */
static void regs_protect(bool ro) { mprotect(F.mmio, 4096, ro ? PROT_READ : PROT_READ | PROT_WRITE); }
static void wr(unsigned o, uint32_t v)
{
	if (o < 4096)
		regs_protect(false);
	memcpy(F.mmio + o, &v, 4);
	if (o < 4096)
		regs_protect(true);
}
static uint8_t *written;
static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	if ((uint8_t *)si->si_addr < F.mmio || (uint8_t *)si->si_addr >= F.mmio + 4096)
		abort();
	written = si->si_addr;
	regs_protect(false);
	((ucontext_t *)uc)->uc_mcontext.gregs[REG_EFL] |= 0x100;
}
static void on_trap(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	((ucontext_t *)uc)->uc_mcontext.gregs[REG_EFL] &= ~0x100;
	if (written == F.mmio + F_CAPLEN + OP_PORTSC(2))
		port_write();
	if (written == F.mmio + F_CAPLEN + OP_PORTSC(1))
		port1_write();
	regs_protect(true);
}
static uint64_t rd64(unsigned o) { return rd(o) | (uint64_t)rd(o + 4) << 32; }
static struct trb *trb_at(uint64_t a) { return (struct trb *)(uintptr_t)a; }

static void post_event(uint64_t ptr, uint32_t d2, uint32_t ctl)
{
	if (!F.evt_base)
		return;
	struct trb *e = trb_at(F.evt_base) + F.evt_pos;
	e->d0 = (uint32_t)ptr;
	e->d1 = (uint32_t)(ptr >> 32);
	e->d2 = d2;
	e->ctl = (ctl & ~1u) | F.evt_cycle;
	if (++F.evt_pos == F.evt_size)
		F.evt_pos = 0, F.evt_cycle ^= 1;
}

/* The next TRB of a ring, following links; NULL when the producer has not written it yet. */
static struct trb *ring_next(struct fring *r, uint64_t *at)
{
	for (;;) {
		struct trb *t = trb_at(r->deq);
		if ((t->ctl & 1) != r->cycle)
			return NULL;
		if (((t->ctl >> 10) & 0x3f) == TRB_LINK) {
			if (t->ctl & TRB_TC)
				r->cycle ^= 1;
			r->deq = t->d0 | (uint64_t)t->d1 << 32;
			continue;
		}
		*at = r->deq;
		return t;
	}
}

static uint32_t *ctx(uint64_t base, unsigned i) { return (uint32_t *)(uintptr_t)(base + i * F.csz); }

/* Endpoint dci of a slot (the disk's, or a hub's EP0) and that slot's output context. */
static struct fep *fake_ep_of(unsigned slot, unsigned dci, uint64_t *out)
{
	for (unsigned i = 0; i < F.nhubs; i++)
		if (F.hub[i].slot == slot && slot) {
			*out = F.hub[i].out_ctx;
			return dci == 1 ? &F.hub[i].ep0 : NULL;
		}
	*out = F.out_ctx;
	return &F.ep[dci];
}

static unsigned do_command(const struct trb *t)
{
	unsigned type = (t->ctl >> 10) & 0x3f, slot = t->ctl >> 24, dci = (t->ctl >> 16) & 0x1f;
	uint64_t p = t->d0 | (uint64_t)t->d1 << 32;
	uint64_t *dcbaa = (uint64_t *)(uintptr_t)rd64(F_CAPLEN + OP_DCBAAP);
	switch (type) {
	case TRB_ENABLE_SLOT:
		for (F.enabled_slot = 1; F.enabled_slot <= 8 && (F.slots_used & (1u << F.enabled_slot)); F.enabled_slot++)
			;
		if (F.enabled_slot > 8)
			return 9;   /* no slots available */
		F.slots_used |= 1u << F.enabled_slot;
		return CC_SUCCESS;
	case TRB_DISABLE_SLOT:
		F.slots_used &= ~(1u << slot);
		if (slot == F.disk_slot) {
			memset(F.ep, 0, sizeof(F.ep));
			F.disk_slot = 0;
		}
		for (unsigned i = 0; i < F.nhubs; i++)
			if (F.hub[i].slot == slot)
				F.hub[i].slot = 0, F.hub[i].ep0.r.on = false;
		return CC_SUCCESS;
	case TRB_ADDRESS: {
		uint32_t *icc = ctx(p, 0), *sc = ctx(p, 1), *ep0 = ctx(p, 2);
		uint64_t deq = ep0[2] | (uint64_t)ep0[3] << 32;
		unsigned speed = (sc[0] >> 20) & 0xf, root = (sc[1] >> 16) & 0xff;
		uint32_t route = sc[0] & 0xfffff;
		struct fhub *h = NULL;
		for (unsigned i = 0; i < F.nhubs; i++)
			if (F.hub[i].root_port == root && F.hub[i].route == route && F.hub[i].speed == speed)
				h = &F.hub[i];
		bool disk = root == F.disk_root_port && route == F.disk_route && speed == F.disk_speed;
		/* A driver that laid the contexts out 32 bytes apart finds nothing where they are. */
		if (icc[1] != 3 || (!h && !disk) || ((ep0[1] >> 3) & 7) != 4 || !deq)
			return 17;   /* parameter error */
		uint64_t out = dcbaa[slot];
		if (!out)
			return 5;
		struct fep *e = h ? &h->ep0 : &F.ep[1];
		*e = (struct fep){ { deq & ~0xfull, (uint32_t)(deq & 1), true }, EP_RUNNING };
		memcpy(h ? h->addr_sc : F.disk_sc, sc, 16);
		if (h)
			h->out_ctx = out, h->slot = slot;
		else
			F.out_ctx = out, F.disk_slot = slot;
		ctx(out, 1)[0] = EP_RUNNING;
		memcpy(ctx(out, 0), sc, 12);
		ctx(out, 0)[3] = 2u << 27 | 1;
		return CC_SUCCESS;
	}
	case TRB_EVAL_CTX:
		return CC_SUCCESS;
	case TRB_CONFIG_EP: {
		uint32_t add = ctx(p, 0)[1];
		for (unsigned i = 0; i < F.nhubs; i++)
			if (F.hub[i].slot == slot) {   /* a hub: its slot context only (Hub, ports, TT) */
				struct fhub *h = &F.hub[i];
				if (add != 1)
					return 17;
				memcpy(h->hub_sc, ctx(p, 1), 16);
				memcpy(ctx(h->out_ctx, 0), ctx(p, 1), 12);
				h->hub_configured = true;
				return CC_SUCCESS;
			}
		for (unsigned i = 2; i < 32; i++)
			if (add & (1u << i)) {
				uint32_t *e = ctx(p, i + 1);
				uint64_t deq = e[2] | (uint64_t)e[3] << 32;
				if (!deq || !((e[1] >> 16) & 0xffff))
					return 17;
				F.ep[i] = (struct fep){ { deq & ~0xfull, (uint32_t)(deq & 1), true }, EP_RUNNING };
				ctx(F.out_ctx, i)[0] = EP_RUNNING;
			}
		return CC_SUCCESS;
	}
	case TRB_STOP_EP: case TRB_RESET_EP: case TRB_SET_DEQ: {
		uint64_t out;
		struct fep *e = fake_ep_of(slot, dci, &out);
		if (!e)
			return 5;
		unsigned want = type == TRB_STOP_EP ? EP_RUNNING : type == TRB_RESET_EP ? EP_HALTED : EP_STOPPED;
		if (e->state != want)
			return 19;   /* context state error */
		if (type == TRB_SET_DEQ) {
			e->r.deq = p & ~0xfull;
			e->r.cycle = (uint32_t)(p & 1);
		} else {
			e->state = EP_STOPPED;
			ctx(out, dci)[0] = EP_STOPPED;
		}
		return CC_SUCCESS;
	}
	}
	return 5;
}

static void put_str(uint8_t *b, const char *s)
{
	b[0] = (uint8_t)(2 + 2 * strlen(s));
	b[1] = 3;
	for (size_t i = 0; s[i]; i++)
		b[2 + 2 * i] = (uint8_t)s[i], b[3 + 2 * i] = 0;
}

/* A control request: bytes of the data stage in buf (IN) and their count; -1 stalls. */
static int control(const uint8_t *setup, uint8_t *buf)
{
	if (F.dead)
		return -1;
	uint16_t value = (uint16_t)(setup[2] | setup[3] << 8);
	static const uint8_t dev[18] = { 18, 1, 0x00, 0x02, 0, 0, 0, 64, 0x34, 0x12, 0x78, 0x56, 0, 1, 1, 2, 3, 1 };
	static const uint8_t cfg[32] = { 9, 2, 32, 0, 1, 1, 0, 0x80, 50, 9, 4, 0, 0, 2, 8, 6, 0x50, 0,
					 7, 5, 0x81, 2, 0, 2, 0, 7, 5, 0x02, 2, 0, 2, 0 };
	switch (setup[0] << 8 | setup[1]) {
	case 0x8006:
		if (value == 0x100) {
			memcpy(buf, dev, 18);
			if (F.disk_speed == USB_SPEED_SUPER)
				buf[3] = 3, buf[7] = 9;   /* bcdUSB 3.0, EP0 of 2^9 bytes */
			return 18;
		}
		if (value == 0x200) {
			memcpy(buf, cfg, 32);
			if (F.disk_speed == USB_SPEED_FULL)
				buf[22] = buf[29] = 64, buf[23] = buf[30] = 0;   /* bulk packets of 64 bytes */
			return 32;
		}
		if (value == 0x302) { put_str(buf, "Fake Stick"); return buf[0]; }
		if (value == 0x303) { put_str(buf, "FAKE-SERIAL-1"); return buf[0]; }
		if ((value >> 8) == 3) { put_str(buf, "Fake"); return buf[0]; }
		return -1;
	case 0x0009: return 0;
	case 0x0201: F.clear_halts++; return 0;
	case 0xa1fe: buf[0] = 0; return 1;
	case 0x21ff:
		F.bot_resets++;
		if (F.deaf_to_bot_reset)
			return -1;
		F.bot = B_CBW;
		F.hanging = false;
		return 0;
	}
	return -1;
}

/* A hub's port p, as its parent's port status shows it: what is plugged there. */
static bool hub_port_has(const struct fhub *h, int p) { return h->child_hub[p] || h->disk_port == p; }
static uint8_t hub_port_speed(const struct fhub *h, int p)
{
	return h->child_hub[p] ? F.hub[h->child_hub[p] - 1].speed : F.disk_speed;
}

/* A hub's control requests (hub class, USB 2.0 ch. 11 and USB 3.2 ch. 10): -1 stalls. What a
 * hub of its kind would not accept (a USB2 request to a USB3 hub...) is counted. */
static int hub_control(struct fhub *h, const uint8_t *setup, uint8_t *buf)
{
	uint16_t value = (uint16_t)(setup[2] | setup[3] << 8), index = (uint16_t)(setup[4] | setup[5] << 8);
	int p = index & 0xff;
	bool port_ok = p >= 1 && p <= h->nports;
	/* USB3 wPortStatus: power is bit 9, speed 0 (5 Gb/s); USB2: power bit 8, bit 9 low, 10 high. */
	uint16_t power = h->usb3 ? 1u << 9 : 1u << 8;
	switch (setup[0] << 8 | setup[1]) {
	case 0x8006:
		if (value == 0x100) {
			/* bDeviceProtocol: 3 SuperSpeed, 2 multi-TT, 1 single TT, 0 full speed */
			uint8_t dev[18] = { 18, 1, 0x00, h->usb3 ? 3 : 2, 9, 0,
					    h->usb3 ? 3 : h->speed != USB_SPEED_HIGH ? 0 : h->mtt ? 2 : 1,
					    h->usb3 ? 9 : 64, 0x51, 0x20, (uint8_t)(0x10 + (h - F.hub)), 0x48, 0, 1, 0, 0, 0, 1 };
			memcpy(buf, dev, 18);
			return 18;
		}
		if (value == 0x200) {
			/* Interface 0 (alt 0: single TT, or the SuperSpeed hub) with its status-change
			 * endpoint; a multi-TT hub's alternate setting 1 (protocol 2). */
			uint8_t cfg[9 + 9 + 7 + 6 + 9 + 7] = { 9, 2, 0, 0, 1, 1, 0, 0xe0, 0,
				9, 4, 0, 0, 1, 9, 0, h->usb3 ? 0 : h->mtt ? 1 : 0, 0,
				7, 5, 0x81, 3, 2, 0, h->usb3 ? 8 : 12 };
			unsigned n = 25;
			if (h->usb3) {
				static const uint8_t comp[6] = { 6, 0x30, 0, 0, 2, 0 };
				memcpy(cfg + n, comp, 6);
				n += 6;
			} else if (h->mtt) {
				static const uint8_t alt1[16] = { 9, 4, 0, 1, 1, 9, 0, 2, 0, 7, 5, 0x81, 3, 1, 0, 12 };
				memcpy(cfg + n, alt1, 16);
				n += 16;
			}
			cfg[2] = (uint8_t)n;
			memcpy(buf, cfg, n);
			return (int)n;
		}
		return -1;
	case 0x0009: return 0;
	case 0x010b:   /* SET_INTERFACE: a multi-TT hub's alternate setting 1 turns its TTs on */
		if (h->usb3 || !h->mtt || value > 1 || index != 0)
			break;
		h->mtt_on = value == 1;
		return 0;
	case 0xa006: {   /* the hub descriptor: 0x2A for a SuperSpeed hub, 0x29 for a USB2 one */
		uint16_t chars = (uint16_t)(1 | (h->usb3 ? 0 : (h->tt_think & 3) << 5));   /* per-port power */
		if (h->usb3 && value == 0x2a00) {
			uint8_t d[12] = { 12, 0x2a, h->nports, (uint8_t)chars, 0, 50, 0, 4, 0, 0, 0, 0 };
			memcpy(buf, d, 12);
			return 12;
		}
		if (!h->usb3 && value == 0x2900) {
			uint8_t d[9] = { 9, 0x29, h->nports, (uint8_t)chars, 0, 50, 0, 0, 0xff };
			memcpy(buf, d, 9);
			return 9;
		}
		break;
	}
	case 0x200c:   /* SET_HUB_DEPTH (USB3 hubs only) */
		if (!h->usb3 || value > 4)
			break;
		h->depth_set = value;
		return 0;
	case 0xa300:   /* GET_STATUS of a port */
		if (!port_ok)
			break;
		buf[0] = (uint8_t)h->st[p], buf[1] = (uint8_t)(h->st[p] >> 8);
		buf[2] = (uint8_t)h->ch[p], buf[3] = (uint8_t)(h->ch[p] >> 8);
		return 4;
	case 0x2303:   /* SET_FEATURE of a port */
		if (!port_ok)
			break;
		if (value == 8) {   /* PORT_POWER: what is plugged there connects */
			h->powered[p] = true;
			h->st[p] |= power;
			if (hub_port_has(h, p))
				h->st[p] |= 1, h->ch[p] |= 1;
			return 0;
		}
		if (value == 4) {   /* PORT_RESET: ends at once, the port enabled at the device's speed */
			if (!h->powered[p] || !hub_port_has(h, p))
				break;
			h->port_resets++;
			h->st[p] |= 2;
			if (!h->usb3)
				h->st[p] |= hub_port_speed(h, p) == USB_SPEED_HIGH ? 1u << 10 :
					    hub_port_speed(h, p) == USB_SPEED_LOW ? 1u << 9 : 0;
			h->ch[p] |= 1u << 4;   /* C_PORT_RESET */
			return 0;
		}
		break;
	case 0x2301:   /* CLEAR_FEATURE of a port: the change bits */
		if (!port_ok)
			break;
		if (value == 16) { h->ch[p] &= ~1u; return 0; }
		if (value == 17 && !h->usb3) { h->ch[p] &= ~2u; return 0; }
		if (value == 20) { h->ch[p] &= ~(1u << 4); return 0; }
		if (value == 29 && h->usb3) { h->ch[p] &= ~(1u << 5); return 0; }
		break;
	}
	h->bad_requests++;
	return -1;
}

static void sense(uint8_t key, uint8_t asc, uint64_t info)
{
	memset(F.sense, 0, sizeof(F.sense));
	F.sense[0] = 0x70 | (info != UINT64_MAX ? 0x80 : 0);
	F.sense[2] = key;
	F.sense[3] = (uint8_t)(info >> 24); F.sense[4] = (uint8_t)(info >> 16);
	F.sense[5] = (uint8_t)(info >> 8); F.sense[6] = (uint8_t)info;
	F.sense[7] = 10;
	F.sense[12] = asc;
}

static uint32_t be(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static void scsi(void)
{
	const uint8_t *cdb = F.cbw + 15;
	uint32_t want;
	memcpy(&want, F.cbw + 8, 4);
	F.csw_status = 0;
	F.data_len = F.data_pos = 0;
	memset(F.data, 0, sizeof(F.data));
	switch (cdb[0]) {
	case 0x00:
		F.turs++;
		if (F.tur_hangs)
			F.hanging = true;
		else if (now_us < F.ready_at) {   /* NOT READY, logical unit is in process of becoming ready */
			sense(2, 0x04, UINT64_MAX);
			F.sense[13] = 0x01;
			F.csw_status = 1;
		}
		break;
	case 0x03: memcpy(F.data, F.sense, sizeof(F.sense)); F.data_len = sizeof(F.sense); break;
	case 0x12:
		if (cdb[1] & 1) { F.data[1] = 0x80; F.data[3] = 4; memcpy(F.data + 4, "FK01", 4); F.data_len = 8; break; }
		F.data[4] = 31;
		memcpy(F.data + 8, "FAKE    Disk            0.1 ", 28);
		F.data_len = 36;
		break;
	case 0x1a: F.data[0] = 3; F.data_len = 4; break;
	case 0x25: { uint32_t last = F_SECTORS - 1; F.data[0] = (uint8_t)(last >> 24); F.data[1] = (uint8_t)(last >> 16);
		F.data[2] = (uint8_t)(last >> 8); F.data[3] = (uint8_t)last; F.data[6] = 2; F.data_len = 8; break; }
	case 0x28: case 0x2a: {
		uint32_t lba = be(cdb + 2), n = (uint32_t)(cdb[7] << 8 | cdb[8]);
		if (lba + n > F_SECTORS) { sense(5, 0x21, UINT64_MAX); F.csw_status = 1; break; }
		if (cdb[0] == 0x2a) { F.out_lba = lba; F.bot = B_DATA_OUT; F.data_len = n * 512; return; }
		if (F.hang_lba >= lba && F.hang_lba < lba + n) { F.hanging = true; }
		if (F.stall_lba >= lba && F.stall_lba < lba + n) {
			sense(3, 0x11, F.stall_lba);
			F.csw_status = 1;
			F.data_len = n * 512;
			F.data_pos = UINT32_MAX;   /* the data stage stalls */
			F.bot = B_DATA_IN;
			return;
		}
		memcpy(F.data, F.disk + (size_t)lba * 512, n * 512);
		F.data_len = n * 512;
		break;
	}
	case 0x35: break;
	case 0x85:   /* ATA PASS-THROUGH (16): IDENTIFY DEVICE, SMART RETURN STATUS as a SAT bridge answers them */
		if (F.sat_deaf) {
			F.hanging = true;
			break;
		}
		if (cdb[14] == 0xb0 && cdb[4] == 0xda && (cdb[2] & 0x20)) {
			static const uint8_t ok[] = { 0x72, 1, 0, 0x1d, 0, 0, 0, 14, 9, 12, 0, 0, 0, 0, 0, 0, 0, 0x4f, 0, 0xc2, 0, 0x50 };
			memset(F.sense, 0, sizeof(F.sense));
			memcpy(F.sense, ok, sizeof(ok));
			if (F.smart_failing)
				F.sense[17] = 0xf4, F.sense[19] = 0x2c;
			F.csw_status = 1;
			break;
		}
		if (cdb[14] == 0xb0 && cdb[4] == 0xd0 && cdb[10] == 0x4f && cdb[12] == 0xc2 && (cdb[2] & 0x08) &&
		    ((cdb[1] >> 1) & 0xf) == 4) {
			if (F.smart_refused) {   /* CHECK CONDITION, the data stage stalled (BOT case Hi > Dn) */
				sense(5, 0x24, UINT64_MAX);
				F.csw_status = 1;
				F.data_len = 512;
				F.data_pos = UINT32_MAX;
				F.bot = B_DATA_IN;
				return;
			}
			/* SMART READ DATA: a page with the attributes of a drive that has begun to fail. */
			static const struct { uint8_t id; uint64_t raw; } at[] = {
				{ 1, 0 }, { 5, 3 }, { 9, 12345 }, { 194, 36 | 21u << 16 | 48ull << 32 }, { 197, 2 }, { 198, 1 },
			};
			for (unsigned i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
				uint8_t *a = F.data + 2 + 12 * i;
				a[0] = at[i].id;
				a[1] = 0x33;
				a[3] = 100;
				a[4] = 99;
				for (int b = 0; b < 6; b++)
					a[5 + b] = (uint8_t)(at[i].raw >> (8 * b));
			}
			uint8_t sum = 0;
			for (int i = 0; i < 511; i++)
				sum = (uint8_t)(sum + F.data[i]);
			F.data[511] = (uint8_t)(-sum + (F.smart_bad_sum ? 1 : 0));
			F.data_len = 512;
			break;
		}
		if (cdb[14] != 0xec) { sense(5, 0x24, UINT64_MAX); F.csw_status = 1; break; }
		{
			static const char model[] = "FAKE ATA DRIVE 1TB", ser[] = "ATA-SER-9";
			memset(F.data + 20, ' ', 20);
			memset(F.data + 46, ' ', 8);
			memset(F.data + 54, ' ', 40);
			for (size_t i = 0; i < sizeof(model) - 1; i++)
				F.data[54 + (i ^ 1)] = (uint8_t)model[i];
			for (size_t i = 0; i < sizeof(ser) - 1; i++)
				F.data[20 + (i ^ 1)] = (uint8_t)ser[i];
			for (size_t i = 0; i < 4; i++)
				F.data[46 + (i ^ 1)] = (uint8_t)"01.2"[i];
			F.data[510] = 0xa5;
			uint8_t sum = 0;
			for (int i = 0; i < 511; i++)
				sum = (uint8_t)(sum + F.data[i]);
			F.data[511] = (uint8_t)-sum;
			F.data_len = 512;
		}
		break;
	default: sense(5, 0x20, UINT64_MAX); F.csw_status = 1; break;
	}
	if (F.data_len > want)
		F.data_len = want;
	F.bot = F.data_len ? B_DATA_IN : B_CSW;
}

static void halt(unsigned dci, uint64_t at)
{
	F.ep[dci].state = EP_HALTED;
	ctx(F.out_ctx, dci)[0] = EP_HALTED;
	post_event(at, (uint32_t)CC_STALL << 24, TRB_TYPE(TRB_EV_TRANSFER) | F.disk_slot << 24 | dci << 16);
}

static bool control_td(struct fep *e, struct fring save, struct trb *t, uint64_t at, uint32_t ev, struct fhub *h);
static bool bulk_td(struct fep *e, struct fring save, struct trb *t, uint64_t at, uint32_t ev, unsigned dci);

/* One TD of the disk's endpoint dci: false when the device has nothing to say yet (NAK). */
static bool transfer(unsigned dci)
{
	struct fep *e = &F.ep[dci];
	struct fring save = e->r;
	uint64_t at;
	struct trb *t = ring_next(&e->r, &at);
	if (!t)
		return false;
	uint32_t ev = TRB_TYPE(TRB_EV_TRANSFER) | F.disk_slot << 24 | dci << 16;
	if (dci == 1)
		return control_td(e, save, t, at, ev, NULL);
	return bulk_td(e, save, t, at, ev, dci);
}

/* A control TD (Setup, Data, Status) on the disk's EP0 or hub h's. */
static bool control_td(struct fep *e, struct fring save, struct trb *t, uint64_t at, uint32_t ev, struct fhub *h)
{
	uint8_t setup[8], buf[256];
	memcpy(setup, t, 8);
	e->r.deq += 16;
	int n = h ? hub_control(h, setup, buf) : control(setup, buf);
	struct trb *d;
	while ((d = ring_next(&e->r, &at)) && ((d->ctl >> 10) & 0x3f) != TRB_STATUS) {
		uint8_t *p = (uint8_t *)(uintptr_t)(d->d0 | (uint64_t)d->d1 << 32);
		uint32_t len = d->d2 & 0x1ffff, k = n > 0 ? ((uint32_t)n < len ? (uint32_t)n : len) : 0;
		if (setup[0] & 0x80)
			memcpy(p, buf, k);
		if (n >= 0 && k < len)
			post_event(at, (uint32_t)CC_SHORT << 24 | (len - k), ev);
		e->r.deq += 16;
	}
	if (!d) { e->r = save; return false; }
	e->r.deq += 16;
	if (n < 0) {
		if (h) {
			e->state = EP_HALTED;
			ctx(h->out_ctx, 1)[0] = EP_HALTED;
			post_event(at, (uint32_t)CC_STALL << 24, ev);
		} else {
			halt(1, at);
		}
		return true;
	}
	post_event(at, (uint32_t)CC_SUCCESS << 24, ev);
	return true;
}

/* A bulk TD of the disk (dci 3 IN, 4 OUT). */
static bool bulk_td(struct fep *e, struct fring save, struct trb *t, uint64_t at, uint32_t ev, unsigned dci)
{
	uint8_t *p = (uint8_t *)(uintptr_t)(t->d0 | (uint64_t)t->d1 << 32);
	uint32_t len = t->d2 & 0x1ffff;   /* the drivers' TDs here are one TRB up to 64 KiB ... */
	uint32_t total = 0;
	uint64_t last = at;
	struct trb *x = t;
	for (;;) {   /* ... or a chain of them: take the whole TD */
		total += x->d2 & 0x1ffff;
		last = at;
		e->r.deq = at + 16;
		if (!(x->ctl & TRB_CH))
			break;
		if (!(x = ring_next(&e->r, &at))) {
			e->r = save;
			return false;
		}
	}
	if (dci == 4) {   /* bulk OUT: a CBW or write data */
		if (F.bot == B_DATA_OUT) {
			uint64_t a = t->d0 | (uint64_t)t->d1 << 32;
			memcpy(F.disk + F.out_lba * 512, (void *)(uintptr_t)a, total);
			F.bot = B_CSW;
		} else {
			memcpy(F.cbw, p, 31);
			scsi();
		}
		post_event(last, (uint32_t)CC_SUCCESS << 24, ev);
		return true;
	}
	/* bulk IN (dci 3) */
	if (F.hanging || F.bot == B_CBW || F.bot == B_DATA_OUT) {
		e->r = save;
		return false;
	}
	if (F.bot == B_DATA_IN) {
		if (F.data_pos == UINT32_MAX) {
			F.bot = B_CSW;
			halt(3, at);
			return true;
		}
		uint32_t k = F.data_len < total ? F.data_len : total;
		uint64_t a = t->d0 | (uint64_t)t->d1 << 32;
		memcpy((void *)(uintptr_t)a, F.data, k);
		F.bot = B_CSW;
		post_event(k < total ? at : last, (uint32_t)(k < total ? CC_SHORT : CC_SUCCESS) << 24 | (total - k), ev);
		return true;
	}
	uint8_t csw[13] = { 'U', 'S', 'B', 'S' };
	memcpy(csw + 4, F.cbw + 4, 4);
	csw[12] = F.csw_status;
	if (F.bad_csw_once) {
		csw[0] = 'X';
		F.bad_csw_once = false;
	}
	memcpy(p, csw, 13);
	F.bot = B_CBW;
	post_event(at, (uint32_t)(len > 13 ? CC_SHORT : CC_SUCCESS) << 24 | (len - 13), ev);
	return true;
}

/* Port 2 (USB2) holds the disk; port 1 (USB3) is empty. */
static void port_show(void)
{
	wr(F_CAPLEN + OP_PORTSC(2), (F.connected ? PORT_CCS | 3u << 10 : 0) | (F.port_enabled ? PORT_PED : 0) |
				    PORT_PP | F.port_changes);
	wr(F_CAPLEN + OP_PORTSC(1), (F.root1_connected ? PORT_CCS | PORT_PED | 4u << 10 : 0) | PORT_PP | F.root1_changes);
}

/* Port 1 is USB3: a link that trained is enabled already; the driver only clears its changes. */
static void port1_write(void)
{
	F.root1_changes &= ~(rd(F_CAPLEN + OP_PORTSC(1)) & PORT_CHANGES);
	port_show();
}

static void port_write(void)
{
	uint32_t sc = rd(F_CAPLEN + OP_PORTSC(2));
	F.port_changes &= ~(sc & PORT_CHANGES);
	if ((sc & PORT_PR) && F.connected) {
		F.port_resets++;
		F.hanging = false;   /* the device starts over */
		F.deaf_to_bot_reset = false;
		F.bot = B_CBW;
		F.port_enabled = true;
		F.port_changes |= PORT_PRC;
	}
	port_show();
}

static void fake_step(void)
{
	unsigned op = F_CAPLEN;
	uint32_t cmd = rd(op + OP_USBCMD);
	/* The firmware lets go of the controller a few steps after the OS asks. */
	uint32_t leg = rd(F_XECP);
	if ((leg & LEG_OS_OWNED) && (leg & LEG_BIOS_OWNED) && F.bios_lets_go && ++F.bios_steps > 3)
		wr(F_XECP, leg & ~LEG_BIOS_OWNED);
	if (cmd & CMD_HCRST) {
		wr(op + OP_USBCMD, 0);
		wr(op + OP_USBSTS, STS_HCH);
		F.running = false;
		return;
	}
	if ((cmd & CMD_RS) && !F.running) {
		F.running = true;
		wr(op + OP_USBSTS, 0);
		uint64_t crcr = rd64(op + OP_CRCR);
		F.cmd = (struct fring){ crcr & ~0x3full, (uint32_t)(crcr & 1), true };
		uint64_t *erst = (uint64_t *)(uintptr_t)rd64(F_RT + IR0 + IR_ERSTBA);
		F.evt_base = erst[0];
		F.evt_size = (unsigned)erst[1];
		F.evt_pos = 0;
		F.evt_cycle = 1;
		F.slots_used = 0;
	} else if (!(cmd & CMD_RS) && F.running) {
		F.running = false;
		wr(op + OP_USBSTS, STS_HCH);
	}
	port_show();
	if (!F.running)
		return;
	uint64_t at;
	struct trb *t;
	while ((t = ring_next(&F.cmd, &at))) {
		F.cmd.deq = at + 16;
		unsigned cc = do_command(t);
		unsigned type = (t->ctl >> 10) & 0x3f;
		unsigned slot = type == TRB_ENABLE_SLOT && cc == CC_SUCCESS ? F.enabled_slot : t->ctl >> 24;
		post_event(at, cc << 24, TRB_TYPE(TRB_EV_CMD) | slot << 24);
	}
	for (unsigned dci = 1; dci < 32; dci++)
		while (F.ep[dci].r.on && F.ep[dci].state != EP_HALTED && transfer(dci))
			;
	for (unsigned i = 0; i < F.nhubs; i++) {
		struct fhub *h = &F.hub[i];
		uint64_t at;
		struct trb *ht;
		while (h->ep0.r.on && h->ep0.state != EP_HALTED && (ht = ring_next(&h->ep0.r, &at)) &&
		       control_td(&h->ep0, h->ep0.r, ht, at, TRB_TYPE(TRB_EV_TRANSFER) | h->slot << 24 | 1u << 16, h))
			;
	}
}

static void fake_init(unsigned csz, unsigned nscratch, bool legacy, bool lets_go)
{
	regs_protect(false);
	memset(&F, 0, sizeof(F));
	F.csz = csz;
	F.nscratch = nscratch;
	F.bios_lets_go = lets_go;
	F.connected = true;
	F.port_changes = PORT_CSC;
	F.disk_root_port = 2;
	F.disk_speed = USB_SPEED_HIGH;
	F.stall_lba = F.hang_lba = UINT64_MAX;
	for (unsigned i = 0; i < sizeof(F.disk); i++)
		F.disk[i] = (uint8_t)(i / 512 + i % 512);
	wr(0, 0x01000000u | F_CAPLEN);                       /* xHCI 1.0 */
	wr(CAP_HCSPARAMS1, 2u << 24 | 1u << 8 | 8);          /* 2 ports, 8 slots */
	wr(CAP_HCSPARAMS2, (nscratch >> 5) << 21 | (nscratch & 0x1f) << 27);
	wr(CAP_HCCPARAMS1, (F_XECP / 4) << 16 | (csz == 64 ? 4 : 0) | 1);
	wr(CAP_DBOFF, F_DB);
	wr(CAP_RTSOFF, F_RT);
	wr(F_CAPLEN + OP_PAGESIZE, 1);
	wr(F_CAPLEN + OP_USBSTS, STS_HCH);
	unsigned x = F_XECP;
	if (legacy) {
		wr(x, 1 | (0x40 / 4) << 8 | LEG_BIOS_OWNED);
		wr(x + 4, 0x0000e011u);   /* SMIs on, as a firmware leaves them */
		x += 0x40;
	}
	wr(x, 2 | (0x20 / 4) << 8 | 3u << 24);
	wr(x + 8, 1 | 1u << 8);              /* port 1: USB3 */
	wr(x + 0x20, 2 | 2u << 24);
	wr(x + 0x28, 2 | 1u << 8);           /* port 2: USB2 */
	regs_protect(true);
	port_show();
}

/* ---- what the drivers need from the kernel and the block layer ---------------------------- */
uint64_t time_now_us(void)
{
	fake_step();
	return now_us += 10;
}
void time_delay_us(uint64_t us)
{
	uint64_t end = now_us + us;
	while (time_now_us() < end)
		;
}
static char outbuf[4096];   /* what the drivers print (info) */
int kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t k = strlen(outbuf);
	int n = fmt_vsnprintf(outbuf + k, sizeof(outbuf) - k, fmt, ap);
	va_end(ap);
	return n;
}
#include "../lib/fake_log.h"
void *dma_alloc(size_t bytes, size_t align) { void *p = aligned_alloc(align, (bytes + align - 1) / align * align); memset(p, 0, bytes); return p; }
void dma_free(void *p, size_t bytes) { (void)bytes; free(p); }
void *kzalloc(size_t n) { return calloc(1, n); }
void kfree(void *p) { free(p); }
volatile void *pci_bar_ptr(struct pci_dev *d, int bar) { (void)d; (void)bar; return F.mmio; }
void pci_enable(struct pci_dev *d, bool mem, bool io, bool master) { (void)d; (void)mem; (void)io; (void)master; }
static struct boot_info bi;
const struct boot_info *boot_info_get(void) { return &bi; }

static struct blk_dev *disks[8];
static int ndisks_reg;
int blk_register(struct blk_dev *d) { disks[ndisks_reg++] = d; return 0; }
void blk_complete(struct blk_dev *d, struct blk_req *r, int status, uint64_t err_lba)
{
	(void)d;
	r->status = status;
	r->err_lba = err_lba;
	r->complete = true;
}
void blk_set_gone(struct blk_dev *d) { d->flags |= BLK_F_GONE; }
void blk_set_returned(struct blk_dev *d) { d->flags &= ~BLK_F_GONE; }
static int scans;
void part_scan_disk(struct blk_dev *d) { (void)d; scans++; }

/* Cooperative tasks as the drivers see them: the USB task on a stack of its own, whose
 * task_yield comes back to run_loop (the poll loop and the shell's turn); a task it spawns
 * (the partition scan: a counter here) runs at once. */
struct task { int unused; };
static struct task usb_t, scan_t;
static ucontext_t loop_ctx, task_ctx;
static bool task_live, in_task, in_poll;
static void (*task_fn)(void *);
static void *task_arg;
static char task_stack[512 * 1024] __attribute__((aligned(16)));
static void task_main(void)
{
	task_fn(task_arg);
	task_live = false;   /* uc_link: back to the loop */
}
struct task *task_spawn(const char *name, void (*fn)(void *arg), void *arg)
{
	(void)name;
	if (in_task) {
		fn(arg);
		return &scan_t;
	}
	if (task_live)
		return NULL;
	getcontext(&task_ctx);
	task_ctx.uc_stack.ss_sp = task_stack;
	task_ctx.uc_stack.ss_size = sizeof(task_stack);
	task_ctx.uc_link = &loop_ctx;
	task_fn = fn;
	task_arg = arg;
	makecontext(&task_ctx, task_main, 0);
	task_live = true;
	return &usb_t;
}
void task_yield(void)
{
	if (in_task && !in_poll)
		swapcontext(&task_ctx, &loop_ctx);
}
void task_sleep_us(uint64_t us)
{
	uint64_t end = now_us + us;
	while (time_now_us() < end)
		task_yield();
}
int wait_yielding(bool (*done)(void *ctx), void *ctx, uint32_t timeout_ms)
{
	deadline_t dl = deadline_in_ms(timeout_ms);
	for (;;) {
		if (done(ctx))
			return 0;
		if (deadline_passed(dl))
			return done(ctx) ? 0 : -E_TIMEOUT;
		task_yield();
	}
}
int task_in_pollers(void) { return in_poll; }
struct task *task_current(void) { return in_task ? &usb_t : NULL; }

/* The class driver table the linker builds in the image. */
const struct usb_class_driver *const __tbl_usbdrv_start[1] = { &msc_driver };
__asm__(".globl __tbl_usbdrv_end\n.set __tbl_usbdrv_end, __tbl_usbdrv_start + 8");

static struct pci_dev pdev;

static void reset_driver_state(void)
{
	nhc = 0;
	ndevs = 0;
	nluns_all = 0;
	ndisks_reg = 0;
	fake_logs[0] = '\0';
	memset(&pdev, 0, sizeof(pdev));
	usb_task = NULL;
	usb_kicked = hubs_due = usb_hotplug_running = false;
	task_live = false;
}

/* The appliance's poll loop for `us` of fake time or until until() holds: the pollers (and the
 * block layer's, for poll_disk), then the USB task's turn until it yields, then the shell's
 * (1 ms). max_hold_us is the longest any of them kept the loop from going round. */
static uint64_t max_hold_us;
static long loop_rounds;
static struct blk_dev *poll_disk;
static void hold_since(uint64_t t0)
{
	if (now_us - t0 > max_hold_us)
		max_hold_us = now_us - t0;
}
static void run_loop(uint64_t us, bool (*until)(void))
{
	uint64_t end = now_us + us;
	while (now_us < end && !(until && until())) {
		uint64_t t0 = time_now_us();
		in_poll = true;
		xhci_hotplug_poll();
		usb_task_poll();
		if (poll_disk)
			msc_poll(poll_disk);
		in_poll = false;
		hold_since(t0);
		if (task_live) {
			t0 = now_us;
			in_task = true;
			swapcontext(&loop_ctx, &task_ctx);
			in_task = false;
			hold_since(t0);
		}
		now_us += 1000;
		loop_rounds++;
	}
}
static bool usb_task_idle(void) { return !task_live; }
static bool disk_added_and_idle(void) { return ndisks_reg > 0 && !task_live; }
static bool disk_added(void) { return ndisks_reg > 0; }
static bool given_up(void) { return strstr(fake_logs, "not ready after") != NULL; }

/* A read through the block driver's ops, polled to completion or `polls` rounds. */
static int read_lba(struct blk_dev *d, struct blk_req *r, uint64_t lba, uint32_t n, void *buf, int polls)
{
	*r = (struct blk_req){ .op = BLK_READ, .lba = lba, .count = n, .buf = buf, .dev = d };
	int rc = msc_start(d, r);
	if (rc < 0)
		return rc;
	for (int i = 0; i < polls && !r->complete; i++) {
		time_now_us();
		msc_poll(d);
	}
	return r->complete ? r->status : -E_BUSY;
}

static bool disk_matches(const uint8_t *buf, uint64_t lba, uint32_t n)
{
	return !memcmp(buf, F.disk + lba * 512, n * 512);
}

int main(void)
{
	static uint8_t buf[65536];
	struct blk_req r;
	struct sigaction sa = { .sa_flags = SA_SIGINFO };
	sa.sa_sigaction = on_segv;
	sigaction(SIGSEGV, &sa, NULL);
	sa.sa_sigaction = on_trap;
	sigaction(SIGTRAP, &sa, NULL);

	/* A firmware that lets go; scratchpads; 64-byte contexts. */
	reset_driver_state();
	fake_init(64, 3, true, true);
	int rc = xhci_probe(&pdev);
	CHECK("probe with legacy support, scratchpads and 64-byte contexts", rc == 0);
	CHECK("the firmware let go: OS owned, BIOS owned clear", (rd(F_XECP) & (LEG_OS_OWNED | LEG_BIOS_OWNED)) == LEG_OS_OWNED);
	CHECK("no forced take-over was needed", !strstr(fake_logs, "taken"));
	CHECK("SMI enables are off after the hand-off", (rd(F_XECP + 4) & 0x0000e011u) == 0);
	uint64_t *dcbaa = (uint64_t *)(uintptr_t)rd64(F_CAPLEN + OP_DCBAAP);
	uint64_t *sp = dcbaa ? (uint64_t *)(uintptr_t)dcbaa[0] : NULL;
	CHECK("the scratchpad array is in DCBAA[0] with 3 page-aligned buffers",
	      sp && sp[0] && sp[1] && sp[2] && !((sp[0] | sp[1] | sp[2]) & 0xfff) && sp[0] != sp[1]);
	CHECK("the USB2 port was reset", F.port_resets == 1);
	CHECK("the disk behind the 64-byte contexts is registered", ndisks_reg == 1 && disks[0]->sectors == F_SECTORS &&
	      disks[0]->lsize == 512);
	struct blk_dev *d = ndisks_reg ? disks[0] : NULL;
	CHECK("the disk is named by its port path: controller 0, root port 2", d && !strcmp(d->name, "usb0-2"));
	CHECK("model from INQUIRY, serial from VPD 80h", d && !strcmp(d->model, "FAKE Disk") && !strcmp(d->serial, "FK01"));
	struct msc_lun *fl = d ? d->drv : NULL;
	CHECK("the drive behind the SAT bridge from ATA PASS-THROUGH IDENTIFY",
	      fl && !strcmp(fl->ata_model, "FAKE ATA DRIVE 1TB") && !strcmp(fl->ata_serial, "ATA-SER-9") &&
	      !strcmp(fl->ata_fw, "01.2"));
	struct blk_health h;
	CHECK("SMART RETURN STATUS through SAT: healthy", fl && sat_smart_status(fl->m, fl, 1000) == 1);
	CHECK("the health op words it: passed, with the sectors the drive gave up on (a warning)",
	      d && d->ops->health(d, &h, 1000) == 0 && h.verdict == BLK_HEALTH_WARNING &&
	      !strcmp(h.words, "SMART: passed, but 3 reallocated, 2 pending, 1 uncorrectable sectors"));
	F.smart_failing = true;
	CHECK("SMART RETURN STATUS through SAT: a threshold exceeded", fl && sat_smart_status(fl->m, fl, 1000) == 0);
	CHECK("the health op words it: SMART: FAILING", d && d->ops->health(d, &h, 1000) == 0 &&
	      h.verdict == BLK_HEALTH_FAILING && !strncmp(h.words, "SMART: FAILING", 14));
	F.smart_failing = false;
	if (!d)
		return CHECK_DONE();
	/* SMART READ DATA through SAT, parsed with the SATA driver's parser, shown by info. */
	outbuf[0] = '\0';
	msc_info(d);
	CHECK("info shows the SMART verdict and attributes read through SAT",
	      strstr(outbuf, "SMART health: ok\nSMART data: temperature 36 C, power-on hours 12345, reallocated 3, "
			     "pending 2, offline uncorrectable 1\n"));
	CHECK("and the report's health line has them", msc_health(d, &h, 1000) == 0 &&
	      !strcmp(h.detail, "SMART health: ok; SMART data: temperature 36 C, power-on hours 12345, reallocated 3, "
			  "pending 2, offline uncorrectable 1"));
	F.smart_bad_sum = true;
	outbuf[0] = '\0';
	msc_info(d);
	CHECK("a SMART page with a wrong checksum is refused, not believed",
	      strstr(outbuf, "SMART data: unreadable (") && !strstr(outbuf, "reallocated"));
	F.smart_bad_sum = false;
	F.smart_refused = true;
	int resets_before = F.bot_resets;
	outbuf[0] = '\0';
	msc_info(d);
	CHECK("a bridge that passes IDENTIFY but refuses SMART READ DATA is said so, with no reset",
	      strstr(outbuf, "SMART data: not passed through by this bridge") && F.bot_resets == resets_before);
	F.smart_refused = false;
	rc = read_lba(d, &r, 40, 2, buf, 1000);
	CHECK("the disk reads after the SMART commands", rc == 0 && disk_matches(buf, 40, 2));
	rc = read_lba(d, &r, 100, 16, buf, 1000);
	CHECK("a read returns the disk's data", rc == 0 && disk_matches(buf, 100, 16));

	/* A wrong CSW: BOT reset recovery, -E_IO, and the next read works. */
	int resets0 = F.bot_resets, halts0 = F.clear_halts;
	F.bad_csw_once = true;
	rc = read_lba(d, &r, 5, 1, buf, 1000);
	CHECK("a wrong CSW fails the command with an I/O error", rc == -E_IO);
	CHECK("and is answered by a BOT reset with both halts cleared", F.bot_resets == resets0 + 1 && F.clear_halts == halts0 + 2 &&
	      strstr(fake_logs, "invalid CSW; BOT reset"));
	rc = read_lba(d, &r, 6, 2, buf, 1000);
	CHECK("the next read after the wrong CSW works", rc == 0 && disk_matches(buf, 6, 2));

	/* A stalled data stage: halt cleared, CSW read, sense names the LBA. */
	F.stall_lba = 300;
	int halts = F.clear_halts;
	rc = read_lba(d, &r, 296, 8, buf, 1000);
	CHECK("a stalled read is a media error", rc == -E_MEDIUM);
	CHECK("naming the LBA from the sense data", r.err_lba == 300);
	CHECK("the stalled endpoint's halt is cleared (Reset Endpoint, CLEAR_FEATURE)", F.clear_halts == halts + 1);
	F.stall_lba = UINT64_MAX;
	rc = read_lba(d, &r, 296, 8, buf, 1000);
	CHECK("reads work after the stall", rc == 0 && disk_matches(buf, 296, 8));

	/* A command that never answers: the layer's deadline calls recover(). */
	F.hang_lba = 1000;
	rc = read_lba(d, &r, 1000, 1, buf, 200);
	CHECK("a hung read does not complete", rc == -E_BUSY);
	int resets = F.bot_resets;
	F.hang_lba = UINT64_MAX;
	rc = msc_recover(d, &r);
	CHECK("recovery: BOT reset, the same identity", rc == 0 && F.bot_resets == resets + 1);
	rc = read_lba(d, &r, 1000, 4, buf, 1000);
	CHECK("reads work after the recovery", rc == 0 && disk_matches(buf, 1000, 4));

	/* A bridge that hangs and ignores the BOT reset: the port reset and re-enumeration bring it
	 * back with the same identity. */
	F.hang_lba = 1500;
	F.deaf_to_bot_reset = true;
	rc = read_lba(d, &r, 1500, 1, buf, 200);
	CHECK("a read hung in a deaf bridge does not complete", rc == -E_BUSY);
	int ports = F.port_resets;
	F.hang_lba = UINT64_MAX;
	rc = msc_recover(d, &r);
	CHECK("recovery climbs to the port reset and re-enumeration, the same identity",
	      rc == 0 && F.port_resets == ports + 1 && strstr(fake_logs, "port reset and re-enumeration") &&
	      strstr(fake_logs, "re-enumerated: same device"));
	rc = read_lba(d, &r, 1500, 4, buf, 1000);
	CHECK("reads work after the port reset", rc == 0 && disk_matches(buf, 1500, 4));

	/* Unplug: the disk is gone; plugged in again (same identity): it is back. */
	F.connected = false;
	F.port_enabled = false;
	F.port_changes |= PORT_CSC;
	run_loop(1000000, NULL);
	CHECK("an unplugged disk is gone (the USB task detached it)", (d->flags & BLK_F_GONE) && !task_live);
	/* Its twin (alike in every identity field, as sticks without serial numbers are), gone from
	 * port 1, listed first: the drive on port 2 must still take its own disk back. */
	struct msc_lun *twin = calloc(1, sizeof(*twin));
	*twin = *(struct msc_lun *)d->drv;
	fmt_snprintf(twin->dev.name, sizeof(twin->dev.name), "usb0-1");
	fmt_snprintf(twin->path, sizeof(twin->path), "1");
	twin->dev.flags |= BLK_F_GONE;
	memmove(all_luns + 1, all_luns, nluns_all * sizeof(all_luns[0]));
	all_luns[0] = twin;
	nluns_all++;
	F.connected = true;
	F.port_changes |= PORT_CSC;
	run_loop(2000000, NULL);
	CHECK("the same disk plugged in again is back under its name", !(d->flags & BLK_F_GONE) && ndisks_reg == 1);
	CHECK("its twin last seen on another port stays gone: alike drives do not swap names",
	      (twin->dev.flags & BLK_F_GONE) && !twin->m && ((struct msc_lun *)d->drv)->m);
	memmove(all_luns, all_luns + 1, --nluns_all * sizeof(all_luns[0]));
	free(twin);
	CHECK("a disk found at boot is left to the boot-time partition scan; a returning one keeps its own", scans == 0);
	rc = read_lba(d, &r, 7, 1, buf, 1000);
	CHECK("and reads", rc == 0 && disk_matches(buf, 7, 1));

	/* A bridge dead to everything: every rung fails, the disk is to be marked gone. */
	F.hang_lba = 50;
	rc = read_lba(d, &r, 50, 1, buf, 200);
	F.dead = true;
	rc = msc_recover(d, &r);
	CHECK("a bridge that answers nothing after every rung is gone", rc == -E_GONE &&
	      strstr(fake_logs, "no answer after the port reset"));

	/* A bridge deaf to ATA PASS-THROUGH, plugged in while running: the SAT IDENTIFY probe waits
	 * its whole deadline (2 s) and a BOT reset ends it, on the USB task, so the poll loop (the
	 * console, the other pollers) goes round all the while; a read of the new disk asked
	 * meanwhile waits for the probe's commands and then completes. */
	reset_driver_state();
	fake_init(32, 0, false, false);
	F.connected = false;
	F.port_changes = 0;
	port_show();
	rc = xhci_probe(&pdev);
	CHECK("a controller with an empty port starts", rc == 0 && ndisks_reg == 0);
	F.sat_deaf = true;
	F.connected = true;
	F.port_changes |= PORT_CSC;
	max_hold_us = 0;
	loop_rounds = 0;
	uint64_t t_plug = now_us;
	run_loop(3000000, disk_added);
	struct blk_dev *dd = ndisks_reg ? disks[0] : NULL;
	static struct blk_req rq;
	rq = (struct blk_req){ .op = BLK_READ, .lba = 8, .count = 4, .buf = buf, .dev = dd };
	bool asked = dd && task_live && msc_start(dd, &rq) == 0;
	poll_disk = dd;
	run_loop(6000000, usb_task_idle);
	uint64_t t_done = now_us;
	run_loop(100000, NULL);
	poll_disk = NULL;
	CHECK("the disk of a bridge deaf to SAT is added on the USB task, under its port's name",
	      dd && !strcmp(dd->name, "usb0-2") && dd->sectors == F_SECTORS && !task_live);
	CHECK("its SAT IDENTIFY was given its whole deadline, then one BOT reset; no drive identity",
	      strstr(fake_logs, "SCSI 0x85: no answer in 2000 ms; BOT reset") && F.bot_resets == 1 &&
	      t_done - t_plug >= 2000000 && dd && !((struct msc_lun *)dd->drv)->ata_model[0]);
	CHECK("the poll loop was never held long while it waited (the console, the other pollers)",
	      max_hold_us < 50000 && loop_rounds > 1000);
	printf("  deaf SAT bridge plugged in: %llu ms to idle, longest hold of the poll loop %llu us, %ld rounds (fake clock)\n",
	       (unsigned long long)(t_done - t_plug) / 1000, (unsigned long long)max_hold_us, loop_rounds);
	CHECK("a read asked during the probe waited for it and then completed with the disk's data",
	      asked && rq.complete && rq.status == 0 && disk_matches(buf, 8, 4));
	CHECK("its partitions are read on a task", scans >= 1);
	F.sat_deaf = false;

	/* A drive spinning up: TEST UNIT READY says "becoming ready" for 3 s. Enumeration does not
	 * wait for it; the USB task adds the disk once it answers, never holding the loop long. */
	reset_driver_state();
	fake_init(32, 0, false, false);
	F.ready_at = now_us + 3000000;
	uint64_t t0 = now_us;
	rc = xhci_probe(&pdev);
	CHECK("enumeration of a drive becoming ready returns before it is ready",
	      rc == 0 && now_us < F.ready_at && now_us - t0 < 1000000 && ndisks_reg == 0 &&
	      strstr(fake_logs, "becoming ready; it is added when it is"));
	int scans0 = scans, turs0 = F.turs;
	max_hold_us = 0;
	run_loop(F.ready_at + 2000000 - now_us, disk_added_and_idle);
	CHECK("the USB task adds it once ready, under its port's name", ndisks_reg == 1 && now_us >= F.ready_at &&
	      now_us < F.ready_at + 500000 && !strcmp(disks[0]->name, "usb0-2") && disks[0]->sectors == F_SECTORS);
	CHECK("asking it again a few times a second, never holding the poll loop long",
	      F.turs - turs0 >= 10 && F.turs - turs0 <= 40 && max_hold_us < 50000);
	printf("  spin-up: %d TEST UNIT READYs in 3 s, longest hold of the poll loop %llu us (fake clock)\n",
	       F.turs - turs0, (unsigned long long)max_hold_us);
	CHECK("its partitions are read on a task, since the boot-time scan has run", scans == scans0 + 1);
	/* One that never becomes ready is given up after MSC_READY_TIMEOUT_MS, said once. */
	reset_driver_state();
	fake_init(32, 0, false, false);
	F.ready_at = UINT64_MAX;
	rc = xhci_probe(&pdev);
	run_loop(12000000, given_up);
	CHECK("a drive that never becomes ready is left out after the deadline, said once",
	      ndisks_reg == 0 && strstr(fake_logs, "LUN 0 'FAKE Disk': not ready after 10000 ms: still becoming ready"));
	F.ready_at = 0;
	/* One whose TEST UNIT READY goes unanswered is not waited for again and again: one
	 * deadline, a BOT reset, left out. */
	reset_driver_state();
	fake_init(32, 0, false, false);
	F.tur_hangs = true;
	t0 = now_us;
	rc = xhci_probe(&pdev);
	run_loop(10000000, NULL);
	CHECK("a drive deaf to TEST UNIT READY is left out after one deadline, not retried",
	      ndisks_reg == 0 && F.turs == 1 && F.bot_resets == 1 && strstr(fake_logs, "not ready: command timed out"));
	F.tur_hangs = false;

	/* A firmware that never lets go; 32-byte contexts, no scratchpads. */
	reset_driver_state();
	fake_init(32, 0, true, false);
	rc = xhci_probe(&pdev);
	CHECK("a firmware that keeps the controller is overridden after the bounded wait",
	      rc == 0 && strstr(fake_logs, "firmware kept the controller 1000 ms: taken") &&
	      (rd(F_XECP) & (LEG_OS_OWNED | LEG_BIOS_OWNED)) == LEG_OS_OWNED);
	CHECK("32-byte contexts enumerate too", ndisks_reg == 1 && disks[0]->sectors == F_SECTORS);

	/* Two SuperSpeed hubs deep: hub A on USB3 root port 1, hub B on A's port 3, the disk (at
	 * SuperSpeed) on B's port 1; root port 2 empty. */
	reset_driver_state();
	fake_init(32, 0, false, false);
	F.connected = false;
	F.port_changes = 0;
	F.root1_connected = true;
	F.root1_changes = PORT_CSC;
	F.nhubs = 2;
	F.hub[0] = (struct fhub){ .usb3 = true, .root_port = 1, .speed = USB_SPEED_SUPER, .nports = 4,
				  .route = 0, .depth_set = -1 };
	F.hub[0].child_hub[3] = 2;
	F.hub[1] = (struct fhub){ .usb3 = true, .root_port = 1, .speed = USB_SPEED_SUPER, .nports = 2,
				  .route = 0x3, .depth_set = -1, .disk_port = 1 };
	F.disk_root_port = 1;
	F.disk_route = 0x13;   /* tier 1: port 3, tier 2: port 1 */
	F.disk_speed = USB_SPEED_SUPER;
	rc = xhci_probe(&pdev);
	d = ndisks_reg ? disks[0] : NULL;
	CHECK("a disk behind two SuperSpeed hubs is registered under its port path",
	      rc == 0 && d && !strcmp(d->name, "usb0-1.3.1") && d->sectors == F_SECTORS);
	CHECK("it reads the disk's data", d && read_lba(d, &r, 100, 16, buf, 100000) == 0 && disk_matches(buf, 100, 16));
	const struct fhub *ha = &F.hub[0], *hb = &F.hub[1];
	CHECK("SET_HUB_DEPTH: 0 for the hub on the root port, 1 for the one below it",
	      ha->depth_set == 0 && hb->depth_set == 1);
	CHECK("the hubs were asked only what a SuperSpeed hub answers (descriptor 0x2A, USB3 port features)",
	      ha->bad_requests == 0 && hb->bad_requests == 0);
	CHECK("each hub port was powered; the used ones reset once, their change bits cleared",
	      ha->powered[1] && ha->powered[4] && hb->powered[2] && ha->port_resets == 1 && hb->port_resets == 1 &&
	      ha->ch[3] == 0 && hb->ch[1] == 0 && (ha->st[3] & 0x203) == 0x203 && (hb->st[1] & 0x203) == 0x203);
	CHECK("hub A's slot: route 0, SuperSpeed, root port 1; Hub flag and 4 ports, no MTT",
	      (ha->addr_sc[0] & 0xfffff) == 0 && ((ha->addr_sc[0] >> 20) & 0xf) == 4 && ((ha->addr_sc[1] >> 16) & 0xff) == 1 &&
	      ha->hub_configured && (ha->hub_sc[0] & (1u << 26)) && !(ha->hub_sc[0] & (1u << 25)) && (ha->hub_sc[1] >> 24) == 4);
	CHECK("hub B's slot: route 0x3, SuperSpeed, root port 1; Hub flag and 2 ports",
	      (hb->addr_sc[0] & 0xfffff) == 0x3 && ((hb->addr_sc[0] >> 20) & 0xf) == 4 && ((hb->addr_sc[1] >> 16) & 0xff) == 1 &&
	      hb->hub_configured && (hb->hub_sc[0] & (1u << 26)) && (hb->hub_sc[1] >> 24) == 2);
	CHECK("the disk's slot: route 0x13, SuperSpeed, root port 1, no TT, not a hub",
	      (F.disk_sc[0] & 0xfffff) == 0x13 && ((F.disk_sc[0] >> 20) & 0xf) == 4 && ((F.disk_sc[1] >> 16) & 0xff) == 1 &&
	      (F.disk_sc[2] & 0xffff) == 0 && !(F.disk_sc[0] & (3u << 25)));

	/* A high-speed multi-TT hub on USB2 root port 2, TT think time 16 FS bit times (1), with a
	 * full-speed disk on its port 2: the disk is reached through the hub's TT for port 2. */
	reset_driver_state();
	fake_init(32, 0, false, false);
	F.nhubs = 1;
	F.hub[0] = (struct fhub){ .mtt = true, .root_port = 2, .speed = USB_SPEED_HIGH, .nports = 4, .tt_think = 1,
				  .route = 0, .depth_set = -1, .disk_port = 2 };
	F.disk_route = 0x2;
	F.disk_speed = USB_SPEED_FULL;
	rc = xhci_probe(&pdev);
	d = ndisks_reg ? disks[0] : NULL;
	ha = &F.hub[0];
	CHECK("a full-speed disk behind a high-speed hub is registered as usb0-2.2",
	      rc == 0 && d && !strcmp(d->name, "usb0-2.2") && d->sectors == F_SECTORS);
	CHECK("it reads the disk's data", d && read_lba(d, &r, 7, 8, buf, 100000) == 0 && disk_matches(buf, 7, 8));
	CHECK("the multi-TT hub was put in its alternate setting 1, sent no SET_HUB_DEPTH nor other USB3 request",
	      ha->mtt_on && ha->depth_set == -1 && ha->bad_requests == 0);
	CHECK("the hub's slot: high speed, root port 2; Hub, MTT, 4 ports, TT think time 1",
	      ((ha->addr_sc[0] >> 20) & 0xf) == 3 && ((ha->addr_sc[1] >> 16) & 0xff) == 2 && ha->hub_configured &&
	      (ha->hub_sc[0] & (1u << 26)) && (ha->hub_sc[0] & (1u << 25)) && (ha->hub_sc[1] >> 24) == 4 &&
	      ((ha->hub_sc[2] >> 16) & 3) == 1);
	CHECK("the disk's slot: route 0x2, full speed, root port 2, TT hub slot = the hub's, TT port 2, MTT",
	      (F.disk_sc[0] & 0xfffff) == 0x2 && ((F.disk_sc[0] >> 20) & 0xf) == 1 && ((F.disk_sc[1] >> 16) & 0xff) == 2 &&
	      (F.disk_sc[2] & 0xff) == ha->slot && ha->slot && ((F.disk_sc[2] >> 8) & 0xff) == 2 &&
	      (F.disk_sc[0] & (1u << 25)) && !(F.disk_sc[0] & (1u << 26)));
	/* The same hub with one TT (protocol 1): no MTT anywhere. */
	reset_driver_state();
	fake_init(32, 0, false, false);
	F.nhubs = 1;
	F.hub[0] = (struct fhub){ .root_port = 2, .speed = USB_SPEED_HIGH, .nports = 4, .tt_think = 2,
				  .route = 0, .depth_set = -1, .disk_port = 3 };
	F.disk_route = 0x3;
	F.disk_speed = USB_SPEED_FULL;
	rc = xhci_probe(&pdev);
	ha = &F.hub[0];
	CHECK("behind a single-TT hub: usb0-2.3, no MTT in either slot, TT port 3, think time 2",
	      rc == 0 && ndisks_reg == 1 && !strcmp(disks[0]->name, "usb0-2.3") && !ha->mtt_on && ha->bad_requests == 0 &&
	      !(ha->hub_sc[0] & (1u << 25)) && ((ha->hub_sc[2] >> 16) & 3) == 2 && !(F.disk_sc[0] & (1u << 25)) &&
	      (F.disk_sc[2] & 0xff) == ha->slot && ((F.disk_sc[2] >> 8) & 0xff) == 3);
	/* A full-speed hub on port 1 of a multi-TT high-speed hub, the full-speed disk on its port
	 * 4: the TT is the high-speed hub's, for its port 1, two tiers up from the disk. */
	reset_driver_state();
	fake_init(32, 0, false, false);
	F.nhubs = 2;
	F.hub[0] = (struct fhub){ .mtt = true, .root_port = 2, .speed = USB_SPEED_HIGH, .nports = 4, .tt_think = 0,
				  .route = 0, .depth_set = -1 };
	F.hub[0].child_hub[1] = 2;
	F.hub[1] = (struct fhub){ .root_port = 2, .speed = USB_SPEED_FULL, .nports = 4, .route = 0x1,
				  .depth_set = -1, .disk_port = 4 };
	F.disk_route = 0x41;
	F.disk_speed = USB_SPEED_FULL;
	rc = xhci_probe(&pdev);
	ha = &F.hub[0];
	hb = &F.hub[1];
	d = ndisks_reg ? disks[0] : NULL;
	CHECK("a full-speed disk behind a full-speed hub behind a high-speed one is usb0-2.1.4 and reads",
	      rc == 0 && d && !strcmp(d->name, "usb0-2.1.4") && read_lba(d, &r, 3, 4, buf, 100000) == 0 &&
	      disk_matches(buf, 3, 4) && ha->bad_requests == 0 && hb->bad_requests == 0);
	CHECK("the full-speed hub's slot: TT of the high-speed hub's port 1, MTT, Hub, 4 ports",
	      ((hb->addr_sc[0] >> 20) & 0xf) == 1 && (hb->addr_sc[2] & 0xff) == ha->slot && ((hb->addr_sc[2] >> 8) & 0xff) == 1 &&
	      (hb->hub_sc[0] & (1u << 26)) && (hb->hub_sc[0] & (1u << 25)) && (hb->hub_sc[1] >> 24) == 4);
	CHECK("the disk's slot: route 0x41, the same TT (high-speed hub's slot, port 1), MTT",
	      (F.disk_sc[0] & 0xfffff) == 0x41 && (F.disk_sc[2] & 0xff) == ha->slot && ((F.disk_sc[2] >> 8) & 0xff) == 1 &&
	      (F.disk_sc[0] & (1u << 25)));
	return CHECK_DONE();
}
