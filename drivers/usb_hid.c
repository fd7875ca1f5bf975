/* USB HID boot-protocol keyboards, polled: each keyboard's interrupt IN reports (8 bytes:
 * modifiers, reserved, six key usages) become the bytes a VT100 terminal would send (US layout),
 * queued with console_input() beside the serial port; held keys repeat. */
#include "usb.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/task.h"
#include "../kernel/time.h"

#define HID_CTRL_TIMEOUT_MS 500   /* SET_PROTOCOL, SET_IDLE, SET_REPORT */
#define HID_REPEAT_DELAY_MS 500   /* a held key starts repeating after this */
#define HID_REPEAT_RATE_MS   40   /* then once per this */
#define HID_MAX_KBDS 4

enum { MOD_LCTRL = 0x01, MOD_LSHIFT = 0x02, MOD_RCTRL = 0x10, MOD_RSHIFT = 0x20 };

struct hid_kbd {
	struct usb_dev *ud;
	uint8_t ep, iface;
	uint8_t *report;          /* DMA, 8 bytes */
	uint8_t last[8];          /* the previous report */
	struct usb_xfer x;
	bool caps;
	uint8_t held;             /* the key repeating, 0 for none */
	deadline_t next_repeat;
};

static struct hid_kbd *kbds[HID_MAX_KBDS];

/* Usages 04h..38h (US layout): unshifted and shifted characters. */
static const char plain[] = "abcdefghijklmnopqrstuvwxyz1234567890\r\x1b\x7f\t -=[]\\#;'`,./";
static const char shifted[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ!@#$%^&*()\r\x1b\x7f\t _+{}|~:\"~<>?";

/* The bytes for one key press, as a terminal sends them. */
static void key_bytes(struct hid_kbd *k, uint8_t usage, uint8_t mods)
{
	static const struct { uint8_t usage; const char *seq; } nav[] = {
		{ 0x4f, "\x1b[C" }, { 0x50, "\x1b[D" }, { 0x51, "\x1b[B" }, { 0x52, "\x1b[A" },
		{ 0x4a, "\x1b[H" }, { 0x4d, "\x1b[F" }, { 0x4b, "\x1b[5~" }, { 0x4e, "\x1b[6~" },
		{ 0x4c, "\x1b[3~" }, { 0x49, "\x1b[2~" },
	};
	for (unsigned i = 0; i < sizeof(nav) / sizeof(nav[0]); i++)
		if (nav[i].usage == usage) {
			console_input(nav[i].seq, strlen(nav[i].seq));
			return;
		}
	if (usage < 0x04 || usage > 0x38)
		return;
	bool shift = mods & (MOD_LSHIFT | MOD_RSHIFT);
	bool letter = usage <= 0x1d;
	if (letter && k->caps)
		shift = !shift;
	char c = (shift ? shifted : plain)[usage - 0x04];
	if ((mods & (MOD_LCTRL | MOD_RCTRL)) && letter)
		c = (char)((plain[usage - 0x04] - 'a' + 1) & 0x1f);   /* Ctrl-C is 0x03 */
	console_input(&c, 1);
}

static bool in_report(const uint8_t *r, uint8_t usage)
{
	for (int i = 2; i < 8; i++)
		if (r[i] == usage)
			return true;
	return false;
}

static void report(struct hid_kbd *k, const uint8_t *r)
{
	if (r[2] == 0x01)
		return;   /* rollover error: too many keys, the report says nothing */
	for (int i = 2; i < 8; i++) {
		uint8_t u = r[i];
		if (u < 0x04 || in_report(k->last, u))
			continue;
		if (u == 0x39) {   /* Caps Lock */
			k->caps = !k->caps;
			continue;
		}
		key_bytes(k, u, r[0]);
		k->held = u;
		k->next_repeat = deadline_in_ms(HID_REPEAT_DELAY_MS);
	}
	if (k->held && !in_report(r, k->held))
		k->held = 0;
	memcpy(k->last, r, 8);
}

static void submit(struct hid_kbd *k)
{
	k->x = (struct usb_xfer){ .dev = k->ud, .ep = k->ep, .buf = k->report, .len = 8 };
	if (usb_hc_submit(&k->x) < 0)
		k->x.done = false, k->ud = NULL;
}

static void hid_poll(void)
{
	for (int i = 0; i < HID_MAX_KBDS; i++) {
		struct hid_kbd *k = kbds[i];
		if (!k || !k->ud)
			continue;
		usb_hc_poll(k->ud->hc);
		if (k->x.done) {
			if (k->x.status == 0 && k->x.actual >= 3) {
				uint8_t r[8] = { 0 };
				memcpy(r, k->report, k->x.actual < 8 ? k->x.actual : 8);
				report(k, r);
			} else if (k->x.status == -E_AGAIN) {
				usb_clear_halt(k->ud, k->ep);
			}
			submit(k);
		}
		if (k->ud && k->held && deadline_passed(k->next_repeat)) {
			key_bytes(k, k->held, k->last[0]);
			k->next_repeat = deadline_in_ms(HID_REPEAT_RATE_MS);
		}
	}
}
POLLER(usb_hid, hid_poll);

static int hid_probe(struct usb_dev *ud, const struct usbd_iface *ifc)
{
	if (ifc->cls != 3 || ifc->subcls != 1 || ifc->proto != 1)
		return -E_UNSUPP;   /* boot-protocol keyboards only */
	int slot;
	for (slot = 0; slot < HID_MAX_KBDS && kbds[slot]; slot++)
		;
	if (slot == HID_MAX_KBDS)
		return -E_NOSPC;
	struct hid_kbd *k = kzalloc(sizeof(*k));
	if (!k)
		return -E_NOMEM;
	for (unsigned i = 0; i < ifc->neps; i++)
		if (ifc->ep[i].type == 3 && (ifc->ep[i].addr & USB_DIR_IN))
			k->ep = ifc->ep[i].addr;
	k->report = dma_alloc(64, 64);
	int rc = !k->ep ? -E_UNSUPP : !k->report ? -E_NOMEM : usb_hc_configure(ud, ifc);
	if (rc == 0) {
		k->ud = ud;
		k->iface = ifc->num;
		/* Boot protocol (the fixed 8-byte report), reports only on change: repeat is ours. */
		usb_control(ud, USB_TYPE_CLASS | USB_RECIP_IFACE, 0x0b, 0, ifc->num, NULL, 0, HID_CTRL_TIMEOUT_MS);
		usb_control(ud, USB_TYPE_CLASS | USB_RECIP_IFACE, 0x0a, 0, ifc->num, NULL, 0, HID_CTRL_TIMEOUT_MS);
		submit(k);
		rc = k->ud ? 0 : -E_IO;
	}
	if (rc < 0) {
		dma_free(k->report, 64);
		kfree(k);
		return rc;
	}
	ud->drv = k;
	kbds[slot] = k;
	log_event(LOG_INFO, "usb: port %s: keyboard %d", ud->path, slot);
	return 0;
}

static void hid_gone(struct usb_dev *ud)
{
	struct hid_kbd *k = ud->drv;
	for (int i = 0; i < HID_MAX_KBDS; i++)
		if (kbds[i] == k)
			kbds[i] = NULL;
	if (k) {
		dma_free(k->report, 64);
		kfree(k);
	}
	ud->drv = NULL;
}

static const struct usb_class_driver hid_driver = { "usb-kbd", hid_probe, hid_gone, NULL, NULL };
USB_DRIVER(hid, hid_driver);
