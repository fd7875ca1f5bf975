/* USB core: enumeration of what hangs off the root ports (port reset, address, descriptors read
 * and parsed defensively, configuration), hubs and their ports, connects and disconnects, class
 * driver binding through the usbdrv table, names by port path, the USB task that does all of
 * it after boot, and the `usb` command. */
#include "usb.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/shell.h"
#include "../kernel/task.h"
#include "../kernel/time.h"

#define USB_CTRL_TIMEOUT_MS      1000   /* a descriptor read or standard request */
#define USB_HUB_RESET_TIMEOUT_MS  500   /* a hub's port reset completes */
#define USB_HUB_POLL_MS           500   /* hub ports are looked at this often */
#define USB_WORK_STEP_MS          100   /* class drivers' background work is stepped this often */
#define USB_HUB_STATUS_GAP_MS       5   /* between a resetting port's status reads */
#define USB_CONFIG_MAX           1024   /* longest configuration descriptor read */

enum { HUB_PORT_CONNECTION = 0, HUB_PORT_ENABLE = 1, HUB_PORT_RESET = 4, HUB_PORT_POWER = 8,
       HUB_C_PORT_CONNECTION = 16, HUB_C_PORT_ENABLE = 17, HUB_C_PORT_RESET = 20,
       HUB_BH_PORT_RESET = 28, HUB_C_BH_PORT_RESET = 29 };

bool usb_hotplug_running;
static struct usb_dev *devs[USB_MAX_DEVS];
static int ndevs;
static struct task *usb_task;    /* running: it alone enumerates, detaches and reads hubs' ports */
static bool usb_kicked, hubs_due;

int usb_dev_count(void) { return ndevs; }
struct usb_dev *usb_dev_get(int i) { return i >= 0 && i < ndevs ? devs[i] : NULL; }

const char *usb_speed_name(enum usb_speed s)
{
	static const char *const n[] = { "-", "full", "low", "high", "super", "super+" };
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/* ---- the USB task ------------------------------------------------------------------------ */

static bool on_usb_task(void)
{
	return usb_task && task_current() == usb_task && !task_in_pollers();
}

int usb_wait(bool (*done)(void *ctx), void *ctx, uint32_t timeout_ms)
{
	return on_usb_task() ? wait_yielding(done, ctx, timeout_ms) : wait_until(done, ctx, timeout_ms);
}

void usb_sleep_ms(uint32_t ms)
{
	if (on_usb_task())
		task_sleep_us(ms * 1000ull);
	else
		time_delay_us(ms * 1000ull);
}

void usb_kick(void)
{
	usb_kicked = true;
}

/* Into d->ctrl (its descriptors are parsed from there). */
static int get_desc(struct usb_dev *d, uint8_t reqtype, uint16_t value, uint16_t index, uint16_t len)
{
	if (len > USB_CONFIG_MAX)
		len = USB_CONFIG_MAX;
	memset(d->ctrl, 0, USB_CONFIG_MAX);
	return usb_control(d, USB_DIR_IN | reqtype, USB_REQ_GET_DESCRIPTOR, value, index, d->ctrl, len,
			   USB_CTRL_TIMEOUT_MS);
}

static void get_string(struct usb_dev *d, uint8_t idx, char *out, size_t outlen)
{
	out[0] = '\0';
	if (!idx)
		return;
	int n = get_desc(d, 0, (uint16_t)(0x300 | idx), 0x0409, 255);
	if (n > 0)
		usbd_string_ascii(d->ctrl, (size_t)n, out, outlen);
}

/* Descriptors of an addressed device: device, strings, configuration (the first), which is set. */
static int read_descriptors(struct usb_dev *d)
{
	int n = get_desc(d, 0, 0x100, 0, 18);
	if (n < 0)
		return n;
	if (usbd_parse_device(d->ctrl, (size_t)n, &d->desc) < 0 || n < 18)
		return -E_CORRUPT;
	get_string(d, d->desc.i_manufacturer, d->manufacturer, sizeof(d->manufacturer));
	get_string(d, d->desc.i_product, d->product, sizeof(d->product));
	get_string(d, d->desc.i_serial, d->serial, sizeof(d->serial));
	n = get_desc(d, 0, 0x200, 0, 9);
	uint16_t total = n > 0 ? usbd_config_total(d->ctrl, (size_t)n) : 0;
	if (!total)
		return n < 0 ? n : -E_CORRUPT;
	n = get_desc(d, 0, 0x200, 0, total);
	if (n < 0)
		return n;
	if (usbd_parse_config(d->ctrl, (size_t)n, &d->cfg) < 0)
		return -E_CORRUPT;
	n = usb_control(d, 0, USB_REQ_SET_CONFIGURATION, d->cfg.value, 0, NULL, 0, USB_CTRL_TIMEOUT_MS);
	return n < 0 ? n : 0;
}

/* ---- hubs -------------------------------------------------------------------------------- */

/* Into a buffer of its own: the block layer's recovery may read a hub's port (a poller) while
 * the USB task waits for another of that hub's. */
static int hub_port_status(struct usb_dev *hub, int port, uint16_t *status, uint16_t *change)
{
	uint8_t *b = dma_alloc(64, 64);
	if (!b)
		return -E_NOMEM;
	int n = usb_control(hub, USB_DIR_IN | USB_TYPE_CLASS | USB_RECIP_OTHER, USB_REQ_GET_STATUS, 0,
			    (uint16_t)port, b, 4, USB_CTRL_TIMEOUT_MS);
	*status = (uint16_t)(b[0] | b[1] << 8);
	*change = (uint16_t)(b[2] | b[3] << 8);
	dma_free(b, 64);
	if (n < 4)
		return n < 0 ? n : -E_CORRUPT;
	return 0;
}

static int hub_feature(struct usb_dev *hub, uint8_t req, uint16_t feature, int port)
{
	int n = usb_control(hub, USB_TYPE_CLASS | USB_RECIP_OTHER, req, feature, (uint16_t)port, NULL, 0,
			    USB_CTRL_TIMEOUT_MS);
	return n < 0 ? n : 0;
}

static bool hub_is_usb3(const struct usb_dev *hub) { return hub->speed >= USB_SPEED_SUPER; }

struct hub_wait { struct usb_dev *hub; int port; int rc; uint16_t st, ch; };

/* A hub port's reset has ended (C_PORT_RESET set, PORT_RESET clear), or its status is unreadable. */
static bool hub_reset_done(void *ctx)
{
	struct hub_wait *w = ctx;
	w->rc = hub_port_status(w->hub, w->port, &w->st, &w->ch);
	if (w->rc < 0 || ((w->ch & (1u << 4)) && !(w->st & (1u << HUB_PORT_RESET))))
		return true;
	usb_sleep_ms(USB_HUB_STATUS_GAP_MS);
	return false;
}

/* Resets a hub's port: the speed of the device on it, or a negative error. */
static int hub_port_reset(struct usb_dev *hub, int port)
{
	int rc = hub_feature(hub, USB_REQ_SET_FEATURE, HUB_PORT_RESET, port);
	if (rc < 0)
		return rc;
	struct hub_wait w = { hub, port, 0, 0, 0 };
	rc = usb_wait(hub_reset_done, &w, USB_HUB_RESET_TIMEOUT_MS);
	if (rc == 0)
		rc = w.rc;
	if (rc < 0) {
		if (rc == -E_TIMEOUT)
			log_event(LOG_WARN, "usb: hub %s port %d: reset not complete in %u ms", hub->path, port,
				  USB_HUB_RESET_TIMEOUT_MS);
		return rc;
	}
	uint16_t st = w.st;
	hub_feature(hub, USB_REQ_CLEAR_FEATURE, HUB_C_PORT_RESET, port);
	usb_sleep_ms(10);   /* TRSTRCY */
	if (!(st & 1) || !(st & 2))
		return -E_IO;
	if (hub_is_usb3(hub))
		return USB_SPEED_SUPER;
	return st & (1u << 9) ? USB_SPEED_LOW : st & (1u << 10) ? USB_SPEED_HIGH : USB_SPEED_FULL;
}

static void enumerate(struct xhci *hc, struct usb_dev *parent, int port);

static int hub_init(struct usb_dev *hub)
{
	uint16_t type = hub_is_usb3(hub) ? 0x2a00 : 0x2900;
	int n = get_desc(hub, USB_TYPE_CLASS, type, 0, 64);
	struct usbd_hub hd;
	if (n < 0 || usbd_parse_hub(hub->ctrl, (size_t)n, &hd) < 0) {
		log_event(LOG_WARN, "usb: hub %s: hub descriptor unreadable", hub->path);
		return n < 0 ? n : -E_CORRUPT;
	}
	if (hub->depth + 1 >= USB_MAX_DEPTH) {
		log_event(LOG_WARN, "usb: hub %s is too deep: its ports are not used", hub->path);
		return -E_UNSUPP;
	}
	hub->is_hub = true;
	hub->hub_ports = hd.nports;
	hub->hub_pwr_ms = hd.pwr_on_ms < 100 ? 100 : hd.pwr_on_ms;
	/* A multi-TT hub (device protocol 2) has one TT per port only in its interface's alternate
	 * setting 1; until that is set it runs one TT for all, and the xHC must not be told MTT. */
	if (!hub_is_usb3(hub) && hub->speed == USB_SPEED_HIGH && hub->desc.proto == 2)
		hub->hub_mtt = usb_control(hub, USB_RECIP_IFACE, USB_REQ_SET_INTERFACE, 1, 0, NULL, 0,
					   USB_CTRL_TIMEOUT_MS) >= 0;
	int rc = xhci_set_hub(hub, hd.nports, hub->hub_mtt, (uint8_t)((hd.characteristics >> 5) & 3));
	if (rc < 0)
		return rc;
	if (hub_is_usb3(hub))   /* SET_HUB_DEPTH: a USB3 hub routes by its tier */
		usb_control(hub, USB_TYPE_CLASS, 12, hub->depth, 0, NULL, 0, USB_CTRL_TIMEOUT_MS);
	for (int p = 1; p <= hd.nports; p++)
		hub_feature(hub, USB_REQ_SET_FEATURE, HUB_PORT_POWER, p);
	usb_sleep_ms(hub->hub_pwr_ms);
	for (int p = 1; p <= hd.nports; p++) {
		uint16_t st, ch;
		if (hub_port_status(hub, p, &st, &ch) < 0)
			continue;
		if (ch & 1)
			hub_feature(hub, USB_REQ_CLEAR_FEATURE, HUB_C_PORT_CONNECTION, p);
		if (st & 1)
			enumerate(hub->hc, hub, p);
	}
	return 0;
}

/* ---- devices ----------------------------------------------------------------------------- */

static struct usb_dev *child_at(struct xhci *hc, struct usb_dev *parent, int port)
{
	for (int i = 0; i < ndevs; i++)
		if (devs[i]->hc == hc && devs[i]->parent == parent && devs[i]->port == port)
			return devs[i];
	return NULL;
}

static void free_dev(struct usb_dev *d)
{
	dma_free(d->ctrl, USB_CONFIG_MAX);
	kfree(d);
}

/* Unplugged (or lost): children first, then its slot (the transfers queued end with -E_GONE
 * while the class driver's state still holds them), then its class driver lets go. */
static void detach(struct usb_dev *d)
{
	for (;;) {
		int i;
		for (i = 0; i < ndevs && devs[i]->parent != d; i++)
			;
		if (i == ndevs)
			break;
		detach(devs[i]);
	}
	d->gone = true;
	log_event(LOG_INFO, "usb: port %s: device %04x:%04x '%s' removed", d->path, d->desc.vid,
		  d->desc.pid, d->product);
	xhci_free_device(d);
	if (d->driver && d->driver->gone)
		d->driver->gone(d);
	for (int i = 0; i < ndevs; i++)
		if (devs[i] == d) {
			devs[i] = devs[--ndevs];
			break;
		}
	free_dev(d);
}

static void bind_driver(struct usb_dev *d)
{
	for (unsigned i = 0; i < d->cfg.niface && !d->driver; i++) {
		const struct usbd_iface *ifc = &d->cfg.iface[i];
		if (ifc->alt)
			continue;
		for_each_table_entry(pd, usbdrv, const struct usb_class_driver *const) {
			d->ifc = ifc;
			if ((*pd)->probe(d, ifc) == 0) {
				d->driver = *pd;
				break;
			}
			d->ifc = NULL;
		}
	}
}

static void enumerate(struct xhci *hc, struct usb_dev *parent, int port)
{
	if (ndevs == USB_MAX_DEVS) {
		log_event(LOG_WARN, "usb: more than %d devices: the one on %s port %d is not used",
			  USB_MAX_DEVS, xhci_name(hc), port);
		return;
	}
	struct usb_dev *d = kzalloc(sizeof(*d));
	if (!d)
		return;
	if (!(d->ctrl = dma_alloc(USB_CONFIG_MAX, 64))) {
		kfree(d);
		return;
	}
	d->hc = hc;
	d->parent = parent;
	d->port = (uint8_t)port;
	if (parent) {
		d->depth = (uint8_t)(parent->depth + 1);
		d->root_port = parent->root_port;
		d->route = parent->route | (uint32_t)(port > 15 ? 15 : port) << (4 * parent->depth);
		fmt_snprintf(d->path, sizeof(d->path), "%s.%d", parent->path, port);
	} else {
		d->root_port = (uint8_t)port;
		fmt_snprintf(d->path, sizeof(d->path), "%d", port);
	}
	int speed = parent ? hub_port_reset(parent, port) : xhci_port_reset(hc, port);
	int rc = speed;
	if (speed > 0) {
		d->speed = (enum usb_speed)speed;
		rc = xhci_address_device(d);
	}
	if (rc == 0 && (rc = read_descriptors(d)) < 0)
		xhci_free_device(d);
	if (rc < 0) {
		log_event(LOG_WARN, "usb: %s port %s: device not enumerated: %s", xhci_name(hc), d->path,
			  err_str(rc));
		free_dev(d);
		return;
	}
	devs[ndevs++] = d;
	log_event(LOG_INFO, "usb: port %s: %04x:%04x '%s' serial '%s', %s speed, class %02x", d->path,
		  d->desc.vid, d->desc.pid, d->product, d->serial, usb_speed_name(d->speed),
		  d->desc.cls ? d->desc.cls : d->cfg.niface ? d->cfg.iface[0].cls : 0);
	if (d->desc.cls == 9 || (d->cfg.niface && d->cfg.iface[0].cls == 9))
		hub_init(d);
	else
		bind_driver(d);
}

void usb_root_port_changed(struct xhci *hc, int port)
{
	struct usb_dev *old = child_at(hc, NULL, port);
	if (old)
		detach(old);
	if (xhci_port_connected(hc, port))
		enumerate(hc, NULL, port);
}

int usb_reset_device(struct usb_dev *d)
{
	if (d->gone)
		return -E_GONE;   /* the USB task is detaching it */
	struct usbd_device before = d->desc;
	char serial[sizeof(d->serial)];
	memcpy(serial, d->serial, sizeof(serial));
	xhci_free_device(d);
	int speed = d->parent ? hub_port_reset(d->parent, d->port) : xhci_port_reset(d->hc, d->root_port);
	if (speed < 0)
		return speed;
	d->speed = (enum usb_speed)speed;
	int rc = xhci_address_device(d);
	if (rc == 0)
		rc = read_descriptors(d);
	if (rc == 0 && (before.vid != d->desc.vid || before.pid != d->desc.pid || strcmp(serial, d->serial)))
		rc = -E_IDENTITY;
	if (rc == 0 && d->ifc)
		rc = usb_hc_configure(d, d->ifc);
	log_event(rc == 0 ? LOG_INFO : LOG_WARN, "usb: port %s: re-enumerated: %s", d->path,
		  rc == 0 ? "same device" : err_str(rc));
	return rc;
}

/* Hub ports change while running: a connect or disconnect re-enumerates that port. One change
 * a call, since the device list changes under the loop; true when there was one. */
static bool hub_changes(void)
{
	for (int i = 0; i < ndevs; i++) {
		struct usb_dev *hub = devs[i];
		if (!hub->is_hub)
			continue;
		for (int p = 1; p <= hub->hub_ports; p++) {
			uint16_t st, ch;
			if (hub_port_status(hub, p, &st, &ch) < 0 || !(ch & 1))
				continue;
			hub_feature(hub, USB_REQ_CLEAR_FEATURE, HUB_C_PORT_CONNECTION, p);
			struct usb_dev *old = child_at(hub->hc, hub, p);
			if (old)
				detach(old);
			if (st & 1)
				enumerate(hub->hc, hub, p);
			return true;
		}
	}
	return false;
}

/* The USB task: root ports the controller saw change, hubs' ports when due, then one step of
 * each class driver's background work; again while anything is left, then it ends. Its waits
 * yield (usb_wait), so a device that answers slowly or not at all holds only this task. */
static void usb_task_run(void *arg)
{
	(void)arg;
	usb_hotplug_running = true;
	while (usb_kicked) {
		usb_kicked = false;
		for (int i = 0; i < xhci_count(); i++) {
			struct xhci *hc = xhci_get(i);
			uint32_t changes = xhci_port_changes(hc);
			for (int p = 1; p <= xhci_port_count(hc); p++)
				if (changes & (1u << p))
					usb_root_port_changed(hc, p);
		}
		if (hubs_due) {
			hubs_due = hub_changes();   /* after a change, look again at once */
			usb_kicked |= hubs_due;
		}
		bool more = false;
		for (int i = 0; i < ndevs; i++)
			if (devs[i]->driver && devs[i]->driver->work && devs[i]->driver->work(devs[i]))
				more = true;
		if (more) {
			usb_sleep_ms(USB_WORK_STEP_MS);
			usb_kicked = true;
		}
	}
	usb_hotplug_running = false;
	usb_task = NULL;
}

/* Starts the USB task when there is something for it; hubs' ports are due every USB_HUB_POLL_MS. */
static void usb_task_poll(void)
{
	static deadline_t next_hubs;
	if (deadline_passed(next_hubs)) {
		next_hubs = deadline_in_ms(USB_HUB_POLL_MS);
		for (int i = 0; i < ndevs && !hubs_due; i++)
			if (devs[i]->is_hub)
				usb_kicked = hubs_due = true;
	}
	if (usb_kicked && !usb_task)
		usb_task = task_spawn("usb", usb_task_run, NULL);   /* NULL: tried again next time */
}
POLLER(usb_task, usb_task_poll);

/* ---- the `usb` command ------------------------------------------------------------------- */

static void print_dev(const struct usb_dev *d)
{
	if (d->depth)
		kprintf("%*s", 11 + 2 * d->depth, "");
	kprintf("%-7s %-6s %04x:%04x  %-24s serial %-16s", d->path,
		usb_speed_name(d->speed), d->desc.vid, d->desc.pid, d->product[0] ? d->product : "-",
		d->serial[0] ? d->serial : "-");
	if (d->is_hub)
		kprintf(" hub, %u ports\n", d->hub_ports);
	else if (d->ifc) {
		kprintf(" class %02x/%02x/%02x, driver %s", d->ifc->cls, d->ifc->subcls, d->ifc->proto,
			d->driver ? d->driver->name : "-");
		if (d->driver && d->driver->show)
			d->driver->show((struct usb_dev *)d);
		kprintf("\n");
	}
	else
		kprintf(" class %02x/%02x/%02x, no driver\n",
			d->cfg.niface ? d->cfg.iface[0].cls : d->desc.cls,
			d->cfg.niface ? d->cfg.iface[0].subcls : d->desc.subcls,
			d->cfg.niface ? d->cfg.iface[0].proto : d->desc.proto);
	for (int i = 0; i < ndevs; i++)
		if (devs[i]->parent == d)
			print_dev(devs[i]);
}

static int cmd_usb(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return -E_USAGE;
	for (int i = 0; i < xhci_count(); i++) {
		struct xhci *hc = xhci_get(i);
		kprintf("%s: %d root ports\n", xhci_describe(hc), xhci_port_count(hc));
		for (int p = 1; p <= xhci_port_count(hc); p++) {
			struct usb_dev *d = child_at(hc, NULL, p);
			kprintf(" port %-2d usb%d ", p, xhci_port_proto(hc, p));
			if (d)
				print_dev(d);
			else
				kprintf("%s\n", xhci_port_connected(hc, p) ? "connected, not enumerated" : "empty");
		}
	}
	if (!xhci_count())
		kprintf("no USB host controller\n");
	return 0;
}
COMMAND(usb, "usb", "USB tree: controllers, ports, speeds, hubs, devices, classes and drivers", NULL, cmd_usb);
