/* xHCI host controller driver, polled: BIOS hand-off, reset, one command ring, one event ring,
 * scratchpads and 32/64-byte contexts as the controller asks, root port reset for USB2 and USB3,
 * device slots, control and bulk/interrupt transfer rings, halt and timeout recovery of an
 * endpoint, and port change detection. drivers/usb.c does the enumeration above it. */
#include "usb.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/pci.h"
#include "../kernel/task.h"
#include "../kernel/time.h"

#define XHCI_HANDOFF_TIMEOUT_MS   1000   /* the BIOS lets go of the controller */
#define XHCI_HALT_TIMEOUT_MS       100   /* spec: 16 ms after Run/Stop is cleared */
#define XHCI_RESET_TIMEOUT_MS     1000   /* HCRST and Controller Not Ready clear */
#define XHCI_CMD_TIMEOUT_MS       1000   /* a command ring command completes */
#define XHCI_PORT_RESET_TIMEOUT_MS 500   /* a port reset (or USB3 warm reset) completes */
#define XHCI_EP0_TIMEOUT_MS       1000   /* the first 8 bytes of the device descriptor; CLEAR_FEATURE(HALT) */
#define XHCI_POWER_ON_MS            20   /* after port power before a connect is trusted */
#define XHCI_HOTPLUG_POLL_MS       200

#define MAX_HC 4
#define MAX_SLOTS 64
#define MAX_PORTS 32
#define RING_TRBS 256                    /* one page; the last is the link back */

/* Capability, operational, port and runtime registers. */
#define CAP_HCSPARAMS1 0x04
#define CAP_HCSPARAMS2 0x08
#define CAP_HCCPARAMS1 0x10
#define CAP_DBOFF      0x14
#define CAP_RTSOFF     0x18
#define OP_USBCMD   0x00
#define OP_USBSTS   0x04
#define OP_PAGESIZE 0x08
#define OP_CRCR     0x18
#define OP_DCBAAP   0x30
#define OP_CONFIG   0x38
#define OP_PORTSC(p) (0x400 + 0x10 * ((p) - 1))
#define CMD_RS    0x1u
#define CMD_HCRST 0x2u
#define STS_HCH   0x1u
#define STS_HSE   0x4u
#define STS_CNR   (1u << 11)
#define PORT_CCS  (1u << 0)
#define PORT_PED  (1u << 1)
#define PORT_PR   (1u << 4)
#define PORT_PP   (1u << 9)
#define PORT_CSC  (1u << 17)
#define PORT_PEC  (1u << 18)
#define PORT_WRC  (1u << 19)
#define PORT_PRC  (1u << 21)
#define PORT_WPR  (1u << 31)
#define PORT_CHANGES (0x7fu << 17)
#define PORT_KEEP (PORT_PP | (3u << 14) | (7u << 25))   /* written back as read; the rest would act */
#define IR0 0x20                          /* interrupter 0 in the runtime registers */
#define IR_IMAN 0x00
#define IR_ERSTSZ 0x08
#define IR_ERSTBA 0x10
#define IR_ERDP 0x18
#define ERDP_EHB 0x8u
#define LEG_BIOS_OWNED (1u << 16)
#define LEG_OS_OWNED   (1u << 24)

enum { TRB_NORMAL = 1, TRB_SETUP = 2, TRB_DATA = 3, TRB_STATUS = 4, TRB_LINK = 6,
       TRB_ENABLE_SLOT = 9, TRB_DISABLE_SLOT = 10, TRB_ADDRESS = 11, TRB_CONFIG_EP = 12,
       TRB_EVAL_CTX = 13, TRB_RESET_EP = 14, TRB_STOP_EP = 15, TRB_SET_DEQ = 16,
       TRB_EV_TRANSFER = 32, TRB_EV_CMD = 33, TRB_EV_PORT = 34 };
#define TRB_C   (1u << 0)
#define TRB_TC  (1u << 1)                /* link: toggle cycle */
#define TRB_ISP (1u << 2)
#define TRB_CH  (1u << 4)
#define TRB_IOC (1u << 5)
#define TRB_IDT (1u << 6)
#define TRB_DIR_IN (1u << 16)
#define TRB_TYPE(t) ((uint32_t)(t) << 10)
enum { CC_SUCCESS = 1, CC_TRANSACTION = 4, CC_STALL = 6, CC_SHORT = 13 };
enum { EP_DISABLED, EP_RUNNING, EP_HALTED, EP_STOPPED, EP_ERROR };

struct trb { uint32_t d0, d1, d2, ctl; };

struct ring {
	struct trb *t;
	unsigned enq;
	uint32_t cycle;
};

#define EP_STREAMS 4                     /* primary stream array entries (stream 0 is reserved) */

struct xhci_ep {
	struct ring ring;
	struct usb_xfer *q;      /* queued, oldest first */
	/* Bulk streams (UAS at SuperSpeed): a stream context array and a ring per stream. */
	uint64_t *sctx;
	struct ring stream[EP_STREAMS];
};

struct xhci_slot {
	uint8_t *in, *out;       /* input and output device contexts */
	struct xhci_ep ep[32];   /* by DCI */
};

/* A command on the ring, waiting for its completion event. The USB task's and a poller's (an
 * endpoint reset of another disk) may be in flight together: each is matched by its TRB. */
struct xhci_cmd {
	uint64_t ptr;
	bool done;
	uint8_t cc, slot;
	struct xhci_cmd *next;
};

struct xhci {
	struct pci_dev *pci;
	volatile uint8_t *cap, *op, *rt, *db;
	unsigned csz, max_slots, nports, nscratch, index, max_psa;
	uint8_t proto[MAX_PORTS + 1];   /* USB major revision of each root port (2 or 3) */
	uint64_t *dcbaa;
	struct ring cmd;
	struct trb *evt;
	unsigned evt_deq;
	uint32_t evt_cycle;
	uint64_t *erst;
	struct usb_dev *slot_dev[MAX_SLOTS + 1];
	struct xhci_cmd *cmds;          /* in flight */
	uint32_t port_changes;
	bool dead;
	char name[16], desc[64];
};

static struct xhci *hcs[MAX_HC];
static unsigned nhc;

static uint32_t cap32(struct xhci *hc, unsigned o) { return mmio_read32(hc->cap + o); }
static uint32_t op32(struct xhci *hc, unsigned o) { return mmio_read32(hc->op + o); }
static void opw32(struct xhci *hc, unsigned o, uint32_t v) { mmio_write32(hc->op + o, v); }
static void opw64(struct xhci *hc, unsigned o, uint64_t v) { opw32(hc, o, (uint32_t)v); opw32(hc, o + 4, (uint32_t)(v >> 32)); }
static void rtw32(struct xhci *hc, unsigned o, uint32_t v) { mmio_write32(hc->rt + IR0 + o, v); }
static void rtw64(struct xhci *hc, unsigned o, uint64_t v) { rtw32(hc, o, (uint32_t)v); rtw32(hc, o + 4, (uint32_t)(v >> 32)); }
static void doorbell(struct xhci *hc, unsigned slot, unsigned target) { mmio_barrier(); mmio_write32(hc->db + 4 * slot, target); }

static int ring_init(struct ring *r)
{
	if (!r->t && !(r->t = dma_alloc(RING_TRBS * sizeof(struct trb), PAGE_SIZE)))
		return -E_NOMEM;
	memset(r->t, 0, RING_TRBS * sizeof(struct trb));
	struct trb *link = &r->t[RING_TRBS - 1];
	link->d0 = (uint32_t)dma_addr(r->t);
	link->d1 = (uint32_t)(dma_addr(r->t) >> 32);
	link->ctl = TRB_TYPE(TRB_LINK) | TRB_TC;
	r->enq = 0;
	r->cycle = 1;
	return 0;
}

static uint64_t ring_addr(const struct ring *r, unsigned i) { return dma_addr(&r->t[i]); }

/* Writes one TRB at the enqueue pointer (its cycle bit last) and returns its address. */
static uint64_t ring_push(struct ring *r, uint64_t param, uint32_t status, uint32_t ctl)
{
	struct trb *t = &r->t[r->enq];
	uint64_t at = dma_addr(t);
	t->d0 = (uint32_t)param;
	t->d1 = (uint32_t)(param >> 32);
	t->d2 = status;
	mmio_barrier();
	t->ctl = (ctl & ~TRB_C) | r->cycle;
	if (++r->enq == RING_TRBS - 1) {   /* hand the link over, chained if the TD goes on */
		struct trb *link = &r->t[RING_TRBS - 1];
		link->ctl = TRB_TYPE(TRB_LINK) | TRB_TC | (ctl & TRB_CH) | r->cycle;
		r->enq = 0;
		r->cycle ^= 1;
	}
	return at;
}

/* ---- events ------------------------------------------------------------------------------ */

static struct xhci_ep *ep_of(struct usb_dev *d, uint8_t ep)
{
	unsigned dci = ep & 0x0f ? (ep & 0x0f) * 2u + !!(ep & USB_DIR_IN) : 1;
	return &((struct xhci_slot *)d->hcpriv)->ep[dci];
}

static unsigned dci_of(uint8_t ep) { return ep & 0x0f ? (ep & 0x0f) * 2u + !!(ep & USB_DIR_IN) : 1; }

static bool in_td(const struct usb_xfer *x, uint64_t p)
{
	return x->first_trb <= x->last_trb ? p >= x->first_trb && p <= x->last_trb
					   : p >= x->first_trb || p <= x->last_trb;
}

/* The ring a transfer goes on: its stream's when the endpoint has streams. */
static struct ring *ring_of(struct xhci_ep *e, uint16_t stream)
{
	return e->sctx ? (stream && stream < EP_STREAMS ? &e->stream[stream] : NULL) : &e->ring;
}

static void xfer_finish(struct xhci_ep *e, struct usb_xfer *x, int status)
{
	for (struct usb_xfer **pp = &e->q; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	x->next = NULL;
	x->status = status;
	x->done = true;
}

/* Bytes a TD moved up to the TRB at `p`, which left `residue` untransferred. */
static uint32_t td_bytes(struct xhci_ep *e, const struct usb_xfer *x, uint64_t p, uint32_t residue)
{
	const struct ring *r = ring_of(e, x->stream);
	unsigned i = (unsigned)((x->first_trb - ring_addr(r, 0)) / sizeof(struct trb));
	uint32_t sum = 0;
	for (unsigned n = 0; n < RING_TRBS; n++, i = (i + 1) % RING_TRBS) {
		const struct trb *t = &r->t[i];
		unsigned type = (t->ctl >> 10) & 0x3f;
		uint32_t len = t->d2 & 0x1ffff;
		if (type == TRB_NORMAL || type == TRB_DATA)
			sum += ring_addr(r, i) == p ? (residue < len ? len - residue : 0) : len;
		if (ring_addr(r, i) == p)
			break;
	}
	return sum < x->len ? sum : x->len;
}

static void transfer_event(struct xhci *hc, const struct trb *ev)
{
	unsigned slot = ev->ctl >> 24, dci = (ev->ctl >> 16) & 0x1f, cc = ev->d2 >> 24;
	uint64_t p = ev->d0 | (uint64_t)ev->d1 << 32;
	struct usb_dev *d = slot <= MAX_SLOTS ? hc->slot_dev[slot] : NULL;
	if (!d || !d->hcpriv)
		return;
	struct xhci_ep *e = &((struct xhci_slot *)d->hcpriv)->ep[dci];
	struct usb_xfer *x;
	for (x = e->q; x && !in_td(x, p); x = x->next)
		;
	if (!x)
		return;   /* for a transfer already finished or abandoned */
	if (cc == CC_SUCCESS || cc == CC_SHORT) {
		if (!(x->short_seen && p == x->last_trb))
			x->actual = p == x->last_trb && cc == CC_SUCCESS && !x->short_seen
				    ? x->len : td_bytes(e, x, p, ev->d2 & 0xffffff);
		if (cc == CC_SHORT)
			x->short_seen = true;
		/* A short bulk TD ends there; a control TD goes on to its status stage. */
		if (p == x->last_trb || (cc == CC_SHORT && x->ep != 0))
			xfer_finish(e, x, 0);
		return;
	}
	log_event(LOG_DEBUG, "%s: port %s endpoint 0x%02x: completion code %u", hc->name, d->path,
		  x->ep, cc);
	xfer_finish(e, x, cc == CC_STALL ? -E_AGAIN : -E_IO);
}

static void handle_events(struct xhci *hc)
{
	bool any = false;
	for (;;) {
		struct trb *ev = &hc->evt[hc->evt_deq];
		if ((ev->ctl & TRB_C) != hc->evt_cycle)
			break;
		mmio_barrier();
		any = true;
		switch ((ev->ctl >> 10) & 0x3f) {
		case TRB_EV_CMD:
			for (struct xhci_cmd *c = hc->cmds; c; c = c->next)
				if ((ev->d0 | (uint64_t)ev->d1 << 32) == c->ptr) {
					c->cc = (uint8_t)(ev->d2 >> 24);
					c->slot = (uint8_t)(ev->ctl >> 24);
					c->done = true;
				}
			break;
		case TRB_EV_TRANSFER:
			transfer_event(hc, ev);
			break;
		case TRB_EV_PORT:
			break;   /* the port's change bits are read by xhci_port_changes */
		}
		if (++hc->evt_deq == RING_TRBS) {
			hc->evt_deq = 0;
			hc->evt_cycle ^= 1;
		}
	}
	if (any)
		rtw64(hc, IR_ERDP, dma_addr(&hc->evt[hc->evt_deq]) | ERDP_EHB);
}

void usb_hc_poll(struct xhci *hc)
{
	if (!hc->dead)
		handle_events(hc);
}

struct cmd_wait { struct xhci *hc; struct xhci_cmd *c; };

static bool command_done(void *ctx)
{
	struct cmd_wait *w = ctx;
	handle_events(w->hc);
	return w->c->done;
}

/* Runs one command: 0, -E_IO (completion code logged) or -E_TIMEOUT; *slot (may be NULL)
 * gets the completion's slot id (Enable Slot's answer). */
static int command_slot(struct xhci *hc, uint64_t param, uint32_t status, uint32_t ctl, const char *what,
			unsigned *slot)
{
	if (hc->dead)
		return -E_GONE;
	struct xhci_cmd c = { .next = hc->cmds };
	c.ptr = ring_push(&hc->cmd, param, status, ctl);
	hc->cmds = &c;
	doorbell(hc, 0, 0);
	struct cmd_wait w = { hc, &c };
	int rc = usb_wait(command_done, &w, XHCI_CMD_TIMEOUT_MS);
	for (struct xhci_cmd **pp = &hc->cmds; *pp; pp = &(*pp)->next)
		if (*pp == &c) {
			*pp = c.next;
			break;
		}
	if (slot)
		*slot = c.slot;
	if (rc < 0) {
		log_event(LOG_WARN, "%s: %s: no completion in %u ms", hc->name, what, XHCI_CMD_TIMEOUT_MS);
		if (op32(hc, OP_USBSTS) & (STS_HSE | STS_HCH)) {
			log_event(LOG_ERR, "%s: controller halted (USBSTS 0x%x)", hc->name, op32(hc, OP_USBSTS));
			hc->dead = true;
		}
		return -E_TIMEOUT;
	}
	if (c.cc != CC_SUCCESS) {
		log_event(LOG_DEBUG, "%s: %s: completion code %u", hc->name, what, c.cc);
		return -E_IO;
	}
	return 0;
}

static int command(struct xhci *hc, uint64_t param, uint32_t status, uint32_t ctl, const char *what)
{
	return command_slot(hc, param, status, ctl, what, NULL);
}

/* ---- contexts ---------------------------------------------------------------------------- */

static uint32_t *in_ctx(struct xhci *hc, struct xhci_slot *s, unsigned i) { return (uint32_t *)(s->in + i * hc->csz); }
static uint32_t *out_ctx(struct xhci *hc, struct xhci_slot *s, unsigned i) { return (uint32_t *)(s->out + i * hc->csz); }

static void ep_ctx(struct xhci *hc, struct xhci_slot *s, unsigned dci, unsigned type, unsigned mps,
		   unsigned burst, unsigned interval, unsigned avg)
{
	uint32_t *c = in_ctx(hc, s, dci + 1);
	memset(c, 0, hc->csz);
	uint64_t deq = ring_addr(&s->ep[dci].ring, s->ep[dci].ring.enq) | s->ep[dci].ring.cycle;
	c[0] = interval << 16;
	c[1] = 3u << 1 | type << 3 | burst << 8 | mps << 16;   /* CErr 3 */
	c[2] = (uint32_t)deq;
	c[3] = (uint32_t)(deq >> 32);
	c[4] = avg | (type == 3 || type == 7 ? (mps * (burst + 1)) << 16 : 0);
}

static unsigned ep_state(struct usb_dev *d, unsigned dci)
{
	return out_ctx(d->hc, d->hcpriv, dci)[0] & 7;
}

/* Brings an endpoint's ring back to an empty, running state: Stop (running) or Reset (halted),
 * then Set TR Dequeue to the enqueue pointer. Queued transfers end with `status`. */
static int ep_restart(struct usb_dev *d, uint8_t ep, int status)
{
	struct xhci *hc = d->hc;
	struct xhci_slot *s = d->hcpriv;
	if (!s)
		return -E_GONE;   /* its slot is being freed (the USB task detaches it) */
	unsigned dci = dci_of(ep);
	struct xhci_ep *e = &s->ep[dci];
	uint32_t who = (uint32_t)d->slot << 24 | dci << 16;
	int rc = 0;
	handle_events(hc);
	if (!e->ring.t && !e->sctx)
		return -E_INVAL;
	unsigned st = ep_state(d, dci);
	if (st == EP_RUNNING)
		rc = command(hc, 0, 0, TRB_TYPE(TRB_STOP_EP) | who, "Stop Endpoint");
	else if (st == EP_HALTED || st == EP_ERROR)
		rc = command(hc, 0, 0, TRB_TYPE(TRB_RESET_EP) | who, "Reset Endpoint");
	if (rc == 0 && ep_state(d, dci) == EP_RUNNING)   /* it finished meanwhile: stop it now */
		rc = command(hc, 0, 0, TRB_TYPE(TRB_STOP_EP) | who, "Stop Endpoint");
	handle_events(hc);
	while (e->q)
		xfer_finish(e, e->q, status);
	if (rc == 0 && !e->sctx) {
		uint64_t deq = ring_addr(&e->ring, e->ring.enq) | e->ring.cycle;
		rc = command(hc, deq, 0, TRB_TYPE(TRB_SET_DEQ) | who, "Set TR Dequeue");
	}
	for (unsigned sid = 1; rc == 0 && e->sctx && sid < EP_STREAMS; sid++) {
		/* Each stream's ring, as a primary TR ring (SCT 1). */
		uint64_t deq = ring_addr(&e->stream[sid], e->stream[sid].enq) | e->stream[sid].cycle | 1u << 1;
		rc = command(hc, deq, sid << 16, TRB_TYPE(TRB_SET_DEQ) | who, "Set TR Dequeue (stream)");
	}
	return rc;
}

/* ---- transfers --------------------------------------------------------------------------- */

/* Data TRBs for buf/len: split where a TRB would cross a 64 KiB boundary. */
static void push_data(struct ring *r, struct usb_xfer *x, unsigned type, uint32_t flags, bool last_ioc)
{
	uint64_t a = dma_addr(x->buf);
	uint32_t left = x->len;
	bool first = true;
	do {
		uint32_t n = (uint32_t)(0x10000 - (a & 0xffff));
		if (n > left)
			n = left;
		left -= n;
		uint32_t ctl = TRB_TYPE(first ? type : TRB_NORMAL) | TRB_ISP | (first ? flags : 0) |
			       (left ? TRB_CH : (last_ioc ? TRB_IOC : 0));
		uint64_t at = ring_push(r, a, n, ctl);
		if (first)
			x->first_trb = at;
		x->last_trb = at;
		first = false;
		a += n;
	} while (left);
}

int usb_hc_submit(struct usb_xfer *x)
{
	struct usb_dev *d = x->dev;
	if (d->gone || !d->hcpriv || d->hc->dead)
		return -E_GONE;
	struct xhci_ep *e = ep_of(d, x->ep);
	struct ring *r = ring_of(e, x->stream);
	if (!r || !r->t)
		return -E_INVAL;
	x->done = x->short_seen = false;
	x->status = 0;
	x->actual = 0;
	x->next = NULL;
	push_data(r, x, TRB_NORMAL, 0, true);
	struct usb_xfer **pp = &e->q;
	while (*pp)
		pp = &(*pp)->next;
	*pp = x;
	doorbell(d->hc, d->slot, dci_of(x->ep) | (e->sctx ? (uint32_t)x->stream << 16 : 0));
	return 0;
}

static bool xfer_done(void *ctx)
{
	struct usb_xfer *x = ctx;
	handle_events(x->dev->hc);
	return x->done;
}

int usb_xfer_wait(struct usb_xfer *x, uint32_t timeout_ms)
{
	if (usb_wait(xfer_done, x, timeout_ms) < 0) {
		ep_restart(x->dev, x->ep, -E_TIMEOUT);
		return -E_TIMEOUT;
	}
	return x->status < 0 ? x->status : (int)x->actual;
}

int usb_bulk(struct usb_dev *d, uint8_t ep, void *buf, uint32_t len, uint32_t timeout_ms)
{
	struct usb_xfer x = { .dev = d, .ep = ep, .buf = buf, .len = len };
	int rc = usb_hc_submit(&x);
	return rc < 0 ? rc : usb_xfer_wait(&x, timeout_ms);
}

bool usb_hc_has_streams(struct usb_dev *d, uint8_t ep)
{
	return d->hcpriv && ep_of(d, ep)->sctx;
}

int usb_hc_cancel(struct usb_dev *d, uint8_t ep)
{
	if (d->gone || !d->hcpriv)
		return -E_GONE;
	return ep_restart(d, ep, -E_TIMEOUT);
}

int usb_clear_halt(struct usb_dev *d, uint8_t ep)
{
	int rc = ep_restart(d, ep, -E_IO);
	if (rc < 0)
		return rc;
	rc = usb_control(d, USB_RECIP_EP, USB_REQ_CLEAR_FEATURE, 0 /* ENDPOINT_HALT */, ep, NULL, 0,
			 XHCI_EP0_TIMEOUT_MS);
	return rc < 0 ? rc : 0;
}

int usb_control(struct usb_dev *d, uint8_t reqtype, uint8_t req, uint16_t value, uint16_t index,
		void *buf, uint16_t len, uint32_t timeout_ms)
{
	if (d->gone || !d->hcpriv || d->hc->dead)
		return -E_GONE;
	struct xhci_ep *e = ep_of(d, 0);
	struct ring *r = &e->ring;
	bool in = reqtype & USB_DIR_IN;
	struct usb_xfer x = { .dev = d, .ep = 0, .buf = buf, .len = len };
	uint64_t setup = reqtype | (uint32_t)req << 8 | (uint32_t)value << 16 | (uint64_t)index << 32 |
			 (uint64_t)len << 48;
	uint32_t trt = len ? (in ? 3u : 2u) << 16 : 0;
	x.first_trb = ring_push(r, setup, 8, TRB_TYPE(TRB_SETUP) | TRB_IDT | trt);
	if (len) {
		uint64_t first = x.first_trb;
		push_data(r, &x, TRB_DATA, in ? TRB_DIR_IN : 0, false);
		x.first_trb = first;
	}
	/* The status stage goes the other way (IN when there is no data). */
	x.last_trb = ring_push(r, 0, 0, TRB_TYPE(TRB_STATUS) | TRB_IOC | (in && len ? 0 : TRB_DIR_IN));
	/* Behind another's control transfer, if one is queued (a hub's port reset by the block
	 * layer's recovery while the USB task reads that hub's ports). */
	struct usb_xfer **pp = &e->q;
	while (*pp)
		pp = &(*pp)->next;
	*pp = &x;
	doorbell(d->hc, d->slot, 1);
	if (usb_wait(xfer_done, &x, timeout_ms) < 0) {
		ep_restart(d, 0, -E_TIMEOUT);
		return -E_TIMEOUT;
	}
	if (x.status < 0) {
		/* A stalled control endpoint only needs its ring restarted: the next SETUP clears it. */
		ep_restart(d, 0, x.status);
		return x.status;
	}
	return (int)x.actual;
}

/* ---- device slots ------------------------------------------------------------------------ */

static unsigned default_mps0(enum usb_speed s)
{
	return s == USB_SPEED_SUPER || s == USB_SPEED_SUPER_PLUS ? 512 : s == USB_SPEED_HIGH ? 64 : 8;
}

int xhci_address_device(struct usb_dev *d)
{
	struct xhci *hc = d->hc;
	unsigned slot = 0;
	int rc = command_slot(hc, 0, 0, TRB_TYPE(TRB_ENABLE_SLOT), "Enable Slot", &slot);
	if (rc < 0)
		return rc;
	if (!slot || slot > MAX_SLOTS)
		return -E_DEVICE;
	struct xhci_slot *s = kzalloc(sizeof(*s));
	if (!s)
		return -E_NOMEM;
	s->in = dma_alloc(PAGE_SIZE, PAGE_SIZE);
	s->out = dma_alloc(PAGE_SIZE, PAGE_SIZE);
	if (!s->in || !s->out || ring_init(&s->ep[1].ring) < 0) {
		dma_free(s->in, PAGE_SIZE);
		dma_free(s->out, PAGE_SIZE);
		kfree(s);
		command(hc, 0, 0, TRB_TYPE(TRB_DISABLE_SLOT) | slot << 24, "Disable Slot");
		return -E_NOMEM;
	}
	d->hcpriv = s;
	d->slot = (uint8_t)slot;
	hc->slot_dev[slot] = d;
	hc->dcbaa[slot] = dma_addr(s->out);
	d->mps0 = (uint16_t)default_mps0(d->speed);

	uint32_t *icc = in_ctx(hc, s, 0), *sc = in_ctx(hc, s, 1);
	icc[1] = 0x3;   /* add the slot and EP0 */
	sc[0] = d->route | (uint32_t)d->speed << 20 | 1u << 27;
	sc[1] = (uint32_t)d->root_port << 16;
	/* A low/full-speed device below a high-speed hub is reached through that hub's TT. */
	const struct usb_dev *tt = d->parent, *below = d;
	while (tt && tt->speed != USB_SPEED_HIGH) {
		below = tt;
		tt = tt->parent;
	}
	if (tt && (d->speed == USB_SPEED_FULL || d->speed == USB_SPEED_LOW)) {
		sc[2] = tt->slot | (uint32_t)below->port << 8;
		if (tt->hub_mtt)   /* MTT: that hub's TTs are one per port */
			sc[0] |= 1u << 25;
	}
	ep_ctx(hc, s, 1, 4, d->mps0, 0, 0, 8);
	rc = command(hc, dma_addr(s->in), 0, TRB_TYPE(TRB_ADDRESS) | slot << 24, "Address Device");
	if (rc < 0)
		goto fail;
	/* bMaxPacketSize0 of a full-speed device is known only from its descriptor. */
	uint8_t *dd = dma_alloc(64, 64);
	if (!dd) {
		rc = -E_NOMEM;
		goto fail;
	}
	rc = usb_control(d, USB_DIR_IN, USB_REQ_GET_DESCRIPTOR, 0x100, 0, dd, 8, XHCI_EP0_TIMEOUT_MS);
	unsigned mps = d->speed >= USB_SPEED_SUPER ? (dd[7] <= 9 ? 1u << dd[7] : 0) : dd[7];
	dma_free(dd, 64);
	if (rc < 8 || (mps != 8 && mps != 16 && mps != 32 && mps != 64 && mps != 512)) {
		log_event(LOG_WARN, "%s: port %s: device descriptor unreadable (%d, bMaxPacketSize0 %u)",
			  hc->name, d->path, rc, mps);
		rc = rc < 0 ? rc : -E_CORRUPT;
		goto fail;
	}
	if (mps != d->mps0) {
		d->mps0 = (uint16_t)mps;
		icc[0] = 0;
		icc[1] = 0x2;
		in_ctx(hc, s, 2)[1] = (in_ctx(hc, s, 2)[1] & 0xffff) | mps << 16;
		rc = command(hc, dma_addr(s->in), 0, TRB_TYPE(TRB_EVAL_CTX) | slot << 24, "Evaluate Context");
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	xhci_free_device(d);
	return rc;
}

void xhci_free_device(struct usb_dev *d)
{
	struct xhci *hc = d->hc;
	struct xhci_slot *s = d->hcpriv;
	if (!s)
		return;
	/* Its transfers end and its events are dropped before the command, which may yield. */
	unsigned slot = d->slot;
	d->hcpriv = NULL;
	d->slot = 0;
	hc->slot_dev[slot] = NULL;
	for (unsigned i = 0; i < 32; i++)
		while (s->ep[i].q)
			xfer_finish(&s->ep[i], s->ep[i].q, -E_GONE);
	command(hc, 0, 0, TRB_TYPE(TRB_DISABLE_SLOT) | (uint32_t)slot << 24, "Disable Slot");
	hc->dcbaa[slot] = 0;
	for (unsigned i = 0; i < 32; i++) {
		if (s->ep[i].ring.t)
			dma_free(s->ep[i].ring.t, RING_TRBS * sizeof(struct trb));
		for (unsigned k = 0; k < EP_STREAMS; k++)
			if (s->ep[i].stream[k].t)
				dma_free(s->ep[i].stream[k].t, RING_TRBS * sizeof(struct trb));
		dma_free(s->ep[i].sctx, EP_STREAMS * 16);
	}
	dma_free(s->in, PAGE_SIZE);
	dma_free(s->out, PAGE_SIZE);
	kfree(s);
}

/* The slot context as the controller has it, into the input context (for Configure Endpoint). */
static void slot_ctx_from_out(struct xhci *hc, struct xhci_slot *s)
{
	memcpy(in_ctx(hc, s, 1), out_ctx(hc, s, 0), hc->csz);
	in_ctx(hc, s, 1)[3] = 0;   /* device address and slot state are the controller's */
}

int usb_hc_configure(struct usb_dev *d, const struct usbd_iface *ifc)
{
	struct xhci *hc = d->hc;
	struct xhci_slot *s = d->hcpriv;
	if (!s)
		return -E_GONE;
	memset(s->in, 0, PAGE_SIZE);
	slot_ctx_from_out(hc, s);
	uint32_t *icc = in_ctx(hc, s, 0), *sc = in_ctx(hc, s, 1);
	unsigned max_dci = (sc[0] >> 27) & 0x1f;
	icc[1] = 1;
	for (unsigned i = 0; i < ifc->neps; i++) {
		const struct usbd_ep *ep = &ifc->ep[i];
		if (ep->type != 2 && ep->type != 3)
			continue;   /* isochronous: nothing here needs it */
		unsigned dci = dci_of(ep->addr);
		bool in = ep->addr & USB_DIR_IN;
		unsigned type = ep->type == 2 ? (in ? 6 : 2) : (in ? 7 : 3);
		unsigned interval = 0;
		if (ep->type == 3) {
			unsigned iv = ep->interval ? ep->interval : 1;
			if (d->speed >= USB_SPEED_HIGH)
				interval = iv > 16 ? 15 : iv - 1;   /* 2^(bInterval-1) microframes */
			else
				for (interval = 3; interval < 10 && (1u << (interval + 1)) <= iv * 8u; interval++)
					;   /* bInterval frames as a power of two of 125 us */
		}
		struct xhci_ep *e = &s->ep[dci];
		bool streams = ep->type == 2 && ep->max_streams && d->speed >= USB_SPEED_SUPER && hc->max_psa >= 1;
		if (streams) {
			/* A linear primary stream array of EP_STREAMS entries (MaxPStreams 1), a ring each. */
			if (!e->sctx && !(e->sctx = dma_alloc(EP_STREAMS * 16, 64)))
				return -E_NOMEM;
			for (unsigned sid = 1; sid < EP_STREAMS; sid++) {
				if (ring_init(&e->stream[sid]) < 0)
					return -E_NOMEM;
				e->sctx[2 * sid] = ring_addr(&e->stream[sid], 0) | 1 | 1u << 1;
				e->sctx[2 * sid + 1] = 0;
			}
		} else if (ring_init(&e->ring) < 0) {
			return -E_NOMEM;
		}
		ep_ctx(hc, s, dci, type, ep->mps, ep->max_burst, interval, ep->type == 2 ? 1024 : ep->mps);
		if (streams) {
			uint32_t *c = in_ctx(hc, s, dci + 1);
			c[0] |= 1u << 10 | 1u << 15;   /* MaxPStreams 1 (4 entries), linear array */
			c[2] = (uint32_t)dma_addr(e->sctx);
			c[3] = (uint32_t)(dma_addr(e->sctx) >> 32);
		}
		icc[1] |= 1u << dci;
		if (dci > max_dci)
			max_dci = dci;
	}
	sc[0] = (sc[0] & ~(0x1fu << 27)) | max_dci << 27;
	return command(hc, dma_addr(s->in), 0, TRB_TYPE(TRB_CONFIG_EP) | (uint32_t)d->slot << 24,
		       "Configure Endpoint");
}

int xhci_set_hub(struct usb_dev *d, uint8_t nports, bool mtt, uint8_t tt_think)
{
	struct xhci *hc = d->hc;
	struct xhci_slot *s = d->hcpriv;
	memset(s->in, 0, PAGE_SIZE);
	slot_ctx_from_out(hc, s);
	uint32_t *sc = in_ctx(hc, s, 1);
	sc[0] |= 1u << 26 | (mtt ? 1u << 25 : 0);
	sc[1] = (sc[1] & 0x00ffffffu) | (uint32_t)nports << 24;
	if (d->speed == USB_SPEED_HIGH)
		sc[2] = (sc[2] & ~(3u << 16)) | (uint32_t)(tt_think & 3) << 16;
	in_ctx(hc, s, 0)[1] = 1;
	return command(hc, dma_addr(s->in), 0, TRB_TYPE(TRB_CONFIG_EP) | (uint32_t)d->slot << 24,
		       "Configure Endpoint (hub)");
}

/* ---- root ports -------------------------------------------------------------------------- */

int xhci_port_count(struct xhci *hc) { return (int)hc->nports; }
const char *xhci_name(struct xhci *hc) { return hc->name; }
int xhci_index(struct xhci *hc) { return (int)hc->index; }
const char *xhci_describe(struct xhci *hc) { return hc->desc; }
int xhci_port_proto(struct xhci *hc, int port) { return hc->proto[port]; }
int xhci_count(void) { return (int)nhc; }
struct xhci *xhci_get(int i) { return i >= 0 && (unsigned)i < nhc ? hcs[i] : NULL; }
void xhci_pci_addr(struct xhci *hc, uint8_t *bus, uint8_t *dev, uint8_t *fn)
{
	*bus = hc->pci->bus;
	*dev = hc->pci->dev;
	*fn = hc->pci->fn;
}

bool xhci_port_connected(struct xhci *hc, int port)
{
	return op32(hc, OP_PORTSC(port)) & PORT_CCS;
}

/* The ports whose CSC/PEC are set, noted in hc->port_changes (the bits acknowledged). */
static void collect_port_changes(struct xhci *hc)
{
	handle_events(hc);
	for (unsigned p = 1; p <= hc->nports; p++) {
		uint32_t sc = op32(hc, OP_PORTSC(p));
		if (sc & (PORT_CSC | PORT_PEC)) {
			opw32(hc, OP_PORTSC(p), (sc & PORT_KEEP) | (sc & (PORT_CSC | PORT_PEC)));
			hc->port_changes |= 1u << p;
		}
	}
}

uint32_t xhci_port_changes(struct xhci *hc)
{
	if (hc->dead)
		return 0;
	collect_port_changes(hc);
	uint32_t c = hc->port_changes;
	hc->port_changes = 0;
	return c;
}

struct port_wait { struct xhci *hc; int port; uint32_t sc; };

/* A port reset (or warm reset) has ended: its change bit set, PR clear. */
static bool port_reset_done(void *ctx)
{
	struct port_wait *w = ctx;
	w->sc = op32(w->hc, OP_PORTSC(w->port));
	return (w->sc & (PORT_PRC | PORT_WRC)) && !(w->sc & PORT_PR);
}

int xhci_port_reset(struct xhci *hc, int port)
{
	uint32_t sc = op32(hc, OP_PORTSC(port));
	if (!(sc & PORT_CCS))
		return -E_NOENT;
	/* A USB3 port enables itself when its link trains; a warm reset only when it did not. */
	uint32_t bit = hc->proto[port] >= 3 ? ((sc & PORT_PED) ? 0 : PORT_WPR) : PORT_PR;
	if (bit) {
		opw32(hc, OP_PORTSC(port), (sc & PORT_KEEP) | bit);
		struct port_wait w = { hc, port, 0 };
		int rc = usb_wait(port_reset_done, &w, XHCI_PORT_RESET_TIMEOUT_MS);
		sc = w.sc;
		if (rc < 0) {
			log_event(LOG_WARN, "%s: port %d: reset not complete in %u ms (PORTSC 0x%x)",
				  hc->name, port, XHCI_PORT_RESET_TIMEOUT_MS, sc);
			return rc;
		}
		opw32(hc, OP_PORTSC(port), (sc & PORT_KEEP) | (sc & PORT_CHANGES));
		usb_sleep_ms(10);   /* TRSTRCY: the device may ignore us for 10 ms */
		sc = op32(hc, OP_PORTSC(port));
	}
	if ((sc & (PORT_CCS | PORT_PED)) != (PORT_CCS | PORT_PED)) {
		log_event(LOG_WARN, "%s: port %d not enabled after reset (PORTSC 0x%x)", hc->name, port, sc);
		return -E_IO;
	}
	unsigned speed = (sc >> 10) & 0xf;
	return speed >= USB_SPEED_FULL && speed <= USB_SPEED_SUPER_PLUS ? (int)speed : -E_UNSUPP;
}

/* ---- controller bring-up ----------------------------------------------------------------- */

/* Takes the controller from the firmware (USB Legacy Support), forcibly when it does not let
 * go in time, with its SMIs off either way; and notes each root port's protocol. */
static void walk_ext_caps(struct xhci *hc)
{
	unsigned off = (cap32(hc, CAP_HCCPARAMS1) >> 16) * 4u;
	for (unsigned n = 0; off && n < 64; n++) {
		volatile uint8_t *c = hc->cap + off;
		uint32_t v = mmio_read32(c);
		unsigned id = v & 0xff;
		if (id == 1) {
			if (v & LEG_BIOS_OWNED) {
				mmio_write32(c, v | LEG_OS_OWNED);
				if (wait_bits32((volatile uint32_t *)c, LEG_BIOS_OWNED, 0, XHCI_HANDOFF_TIMEOUT_MS) < 0) {
					log_event(LOG_WARN, "%s: firmware kept the controller %u ms: taken",
						  hc->name, XHCI_HANDOFF_TIMEOUT_MS);
					mmio_write32(c, (mmio_read32(c) & ~LEG_BIOS_OWNED) | LEG_OS_OWNED);
				}
			}
			/* SMI enables off, SMI status bits (write 1 to clear) cleared. */
			uint32_t ctl = mmio_read32(c + 4);
			mmio_write32(c + 4, (ctl & ~0x0000e011u) | 0xe0000000u);
		} else if (id == 2) {
			unsigned major = v >> 24;
			uint32_t ports = mmio_read32(c + 8);
			unsigned first = ports & 0xff, count = (ports >> 8) & 0xff;
			for (unsigned p = first; p < first + count && p <= MAX_PORTS; p++)
				if (p)
					hc->proto[p] = (uint8_t)major;
		}
		unsigned next = (v >> 8) & 0xff;
		off = next ? off + next * 4 : 0;
	}
}

static int hc_reset(struct xhci *hc)
{
	if (!(op32(hc, OP_USBSTS) & STS_HCH)) {
		opw32(hc, OP_USBCMD, op32(hc, OP_USBCMD) & ~CMD_RS);
		if (wait_bits32((volatile uint32_t *)(hc->op + OP_USBSTS), STS_HCH, STS_HCH,
				XHCI_HALT_TIMEOUT_MS) < 0)
			return -E_TIMEOUT;
	}
	opw32(hc, OP_USBCMD, CMD_HCRST);
	if (wait_bits32((volatile uint32_t *)(hc->op + OP_USBCMD), CMD_HCRST, 0, XHCI_RESET_TIMEOUT_MS) < 0 ||
	    wait_bits32((volatile uint32_t *)(hc->op + OP_USBSTS), STS_CNR, 0, XHCI_RESET_TIMEOUT_MS) < 0)
		return -E_TIMEOUT;
	return 0;
}

static int hc_start(struct xhci *hc)
{
	opw32(hc, OP_CONFIG, hc->max_slots);
	hc->dcbaa = dma_alloc(PAGE_SIZE, PAGE_SIZE);
	if (!hc->dcbaa || ring_init(&hc->cmd) < 0)
		return -E_NOMEM;
	if (hc->nscratch) {
		uint64_t *arr = dma_alloc(hc->nscratch * 8u, 64);
		uint8_t *pages = dma_alloc((size_t)hc->nscratch * PAGE_SIZE, PAGE_SIZE);
		if (!arr || !pages)
			return -E_NOMEM;
		for (unsigned i = 0; i < hc->nscratch; i++)
			arr[i] = dma_addr(pages + (size_t)i * PAGE_SIZE);
		hc->dcbaa[0] = dma_addr(arr);
	}
	opw64(hc, OP_DCBAAP, dma_addr(hc->dcbaa));
	opw64(hc, OP_CRCR, ring_addr(&hc->cmd, 0) | 1);
	hc->evt = dma_alloc(RING_TRBS * sizeof(struct trb), PAGE_SIZE);
	hc->erst = dma_alloc(64, 64);
	if (!hc->evt || !hc->erst)
		return -E_NOMEM;
	hc->erst[0] = dma_addr(hc->evt);
	hc->erst[1] = RING_TRBS;
	hc->evt_deq = 0;
	hc->evt_cycle = 1;
	rtw32(hc, IR_IMAN, 0x1);   /* clear a pending interrupt; interrupts stay off: polled */
	rtw32(hc, IR_ERSTSZ, 1);
	rtw64(hc, IR_ERDP, dma_addr(hc->evt));
	rtw64(hc, IR_ERSTBA, dma_addr(hc->erst));
	opw32(hc, OP_USBCMD, CMD_RS);
	if (wait_bits32((volatile uint32_t *)(hc->op + OP_USBSTS), STS_HCH, 0, XHCI_HALT_TIMEOUT_MS) < 0)
		return -E_TIMEOUT;
	return 0;
}

static bool xhci_match(const struct pci_dev *d)
{
	return d->class == 0x0c && d->subclass == 0x03 && d->progif == 0x30;
}

static int xhci_probe(struct pci_dev *pci)
{
	if (nhc == MAX_HC)
		return -E_NOSPC;
	struct xhci *hc = kzalloc(sizeof(*hc));
	if (!hc)
		return -E_NOMEM;
	hc->pci = pci;
	hc->cap = pci_bar_ptr(pci, 0);
	if (!hc->cap) {
		kfree(hc);
		return -E_UNSUPP;
	}
	pci_enable(pci, true, false, true);
	hc->index = nhc;
	fmt_snprintf(hc->name, sizeof(hc->name), "xhci%u", nhc);
	fmt_snprintf(hc->desc, sizeof(hc->desc), "xhci%u (pci %02x:%02x.%x, %04x:%04x)", nhc, pci->bus,
		     pci->dev, pci->fn, pci->vendor, pci->device);
	/* 4-byte reads only: some controllers (QEMU before 9.0) mishandle narrower ones. */
	uint32_t c0 = cap32(hc, 0), sp1 = cap32(hc, CAP_HCSPARAMS1), sp2 = cap32(hc, CAP_HCSPARAMS2);
	uint32_t cp1 = cap32(hc, CAP_HCCPARAMS1);
	hc->op = hc->cap + (c0 & 0xff);
	hc->rt = hc->cap + (cap32(hc, CAP_RTSOFF) & ~0x1fu);
	hc->db = hc->cap + (cap32(hc, CAP_DBOFF) & ~0x3u);
	hc->max_slots = (sp1 & 0xff) < MAX_SLOTS ? sp1 & 0xff : MAX_SLOTS;
	hc->nports = (sp1 >> 24) < MAX_PORTS ? sp1 >> 24 : MAX_PORTS;
	hc->nscratch = ((sp2 >> 21) & 0x1f) << 5 | sp2 >> 27;
	hc->csz = cp1 & 0x4 ? 64 : 32;
	hc->max_psa = (cp1 >> 12) & 0xf;   /* primary stream array size 2^(MaxPSASize+1); 0: no streams */
	for (unsigned p = 1; p <= hc->nports; p++)
		hc->proto[p] = 2;
	walk_ext_caps(hc);
	int rc = -E_UNSUPP;
	if (!(op32(hc, OP_PAGESIZE) & 1)) {
		log_event(LOG_WARN, "%s: no 4 KiB page size: skipped", hc->name);
		goto fail;
	}
	rc = hc_reset(hc);
	if (rc == 0)
		rc = hc_start(hc);
	if (rc < 0) {
		log_event(LOG_ERR, "%s: controller start failed: %s", hc->name, err_str(rc));
		goto fail;
	}
	hcs[nhc++] = hc;
	pci->driver_data = hc;
	log_event(LOG_INFO, "%s: pci %02x:%02x.%x, xHCI %x.%02x, %u ports, %u slots, %u-byte contexts, %u scratchpads",
		  hc->name, pci->bus, pci->dev, pci->fn, c0 >> 24, (c0 >> 16) & 0xff, hc->nports,
		  hc->max_slots, hc->csz, hc->nscratch);
	/* Ports with power switching start unpowered. */
	if (cp1 & 0x8)
		for (unsigned p = 1; p <= hc->nports; p++)
			opw32(hc, OP_PORTSC(p), (op32(hc, OP_PORTSC(p)) & PORT_KEEP) | PORT_PP);
	time_delay_us(XHCI_POWER_ON_MS * 1000);
	uint32_t changes = xhci_port_changes(hc);
	for (unsigned p = 1; p <= hc->nports; p++)
		if (xhci_port_connected(hc, (int)p) || (changes & (1u << p)))
			usb_root_port_changed(hc, (int)p);
	return 0;
fail:
	kfree(hc);
	return rc;
}
PCI_DRIVER(xhci, "xhci", xhci_match, xhci_probe);

/* Connects and disconnects while running: the port's change bits (and its events) are noted
 * here, and the USB task looks at those ports again (xhci_port_changes); nothing waits here. */
static void xhci_hotplug_poll(void)
{
	static deadline_t next;
	if (!deadline_passed(next))
		return;
	next = deadline_in_ms(XHCI_HOTPLUG_POLL_MS);
	for (unsigned i = 0; i < nhc; i++) {
		struct xhci *hc = hcs[i];
		if (hc->dead)
			continue;
		collect_port_changes(hc);
		if (hc->port_changes)
			usb_kick();
	}
}
POLLER(xhci_hotplug, xhci_hotplug_poll);
