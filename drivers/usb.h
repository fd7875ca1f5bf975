/* The USB core's interface: devices found on a host controller's ports (and hubs' ports), the
 * transfers a class driver may run on them, and the class-driver table. One host controller
 * driver (drivers/xhci.c) implements the usb_hc_* calls; drivers/usb.c enumerates. */
#ifndef DRIVERS_USB_H
#define DRIVERS_USB_H

#include <stdbool.h>
#include <stdint.h>
#include "../lib/errors.h"
#include "../lib/usbdesc.h"
#include "../kernel/table.h"

#define USB_MAX_DEPTH 5          /* hub tiers below a root port (the route string holds 5) */
#define USB_MAX_DEVS  32

enum usb_speed { USB_SPEED_NONE, USB_SPEED_FULL, USB_SPEED_LOW, USB_SPEED_HIGH, USB_SPEED_SUPER,
		 USB_SPEED_SUPER_PLUS };

struct xhci;
struct usb_dev;

/* One transfer on an endpoint, queued by usb_hc_submit and completed from usb_hc_poll. */
struct usb_xfer {
	struct usb_dev *dev;
	uint8_t ep;               /* endpoint address (0 = control, bit 7 = IN) */
	uint16_t stream;          /* bulk stream ID when the endpoint has streams (UAS), else 0 */
	void *buf;
	uint32_t len;
	/* Results. */
	bool done;
	int status;               /* 0, -E_IO (transaction error, babble), -E_AGAIN (stalled: halt
				     cleared by usb_clear_halt), -E_GONE, -E_TIMEOUT */
	uint32_t actual;          /* bytes moved */
	/* The host controller's. */
	uint64_t first_trb, last_trb;
	bool short_seen;
	struct usb_xfer *next;
};

struct usb_class_driver {
	const char *name;
	/* Claims interface `ifc` of a configured device: 0 when bound. */
	int (*probe)(struct usb_dev *d, const struct usbd_iface *ifc);
	/* The device was unplugged (or its port reset failed): stop using it. */
	void (*gone)(struct usb_dev *d);
	/* What the `usb` tree adds after the driver's name (its disks); may be NULL. */
	void (*show)(struct usb_dev *d);
	/* Background work, one step a call on the USB task (a LUN becoming ready); true while
	 * there is more to come. May be NULL. */
	bool (*work)(struct usb_dev *d);
};
#define USB_DRIVER(id, drv) static const struct usb_class_driver *__usbdrv_##id TABLE_ENTRY(usbdrv, id) = &(drv)

struct usb_dev {
	struct xhci *hc;
	struct usb_dev *parent;   /* the hub it hangs off, NULL on a root port */
	uint8_t root_port;        /* 1-based */
	uint8_t port;             /* on its parent (root_port when parent is NULL) */
	uint8_t depth;            /* 0 on a root port */
	uint32_t route;           /* xHCI route string: 4 bits per hub tier */
	char path[24];            /* "3", "3.1.4": root port, then hub ports */
	enum usb_speed speed;
	uint8_t slot;             /* xHCI slot id, 0 while not addressed */
	uint16_t mps0;
	struct usbd_device desc;
	struct usbd_config cfg;
	const struct usbd_iface *ifc;   /* the interface its class driver bound (in cfg) */
	char manufacturer[32], product[48], serial[48];
	uint8_t *ctrl;            /* DMA bounce buffer for its descriptors (USB_CONFIG_MAX bytes) */
	bool gone;
	/* Hub state when it is one. */
	bool is_hub;
	uint8_t hub_ports;
	uint16_t hub_pwr_ms;
	bool hub_mtt;             /* a high-speed hub running a TT per port (alternate setting 1) */
	/* The bound class driver and its state. */
	const struct usb_class_driver *driver;
	void *drv;
	/* The host controller's per-device state (rings, contexts). */
	void *hcpriv;
};

/* Host controller calls (drivers/xhci.c). */
int usb_hc_submit(struct usb_xfer *x);   /* queues a bulk/interrupt transfer; never blocks */
void usb_hc_poll(struct xhci *hc);       /* reaps events: completes transfers, notes port changes */
int usb_hc_cancel(struct usb_dev *d, uint8_t ep);   /* stops an endpoint, drops its transfers */
/* Control transfer with a deadline: bytes moved, or a negative error (-E_AGAIN after a stall). */
int usb_control(struct usb_dev *d, uint8_t reqtype, uint8_t req, uint16_t value, uint16_t index,
		void *buf, uint16_t len, uint32_t timeout_ms);
/* Configures the interface's endpoints in the controller (after SET_CONFIGURATION); bulk
 * endpoints whose SuperSpeed companion offers streams get streams 1..3 (x->stream picks one). */
int usb_hc_configure(struct usb_dev *d, const struct usbd_iface *ifc);
bool usb_hc_has_streams(struct usb_dev *d, uint8_t ep);
/* Clears a halted endpoint in the controller (Reset Endpoint, Set TR Dequeue) and the device
 * (CLEAR_FEATURE ENDPOINT_HALT). */
int usb_clear_halt(struct usb_dev *d, uint8_t ep);
/* Waits for a queued transfer (polling the controller) until done or the deadline. */
int usb_xfer_wait(struct usb_xfer *x, uint32_t timeout_ms);
/* Runs one bulk/interrupt transfer to completion: bytes moved or a negative error. */
int usb_bulk(struct usb_dev *d, uint8_t ep, void *buf, uint32_t len, uint32_t timeout_ms);

/* Port operations of the controller's root hub (drivers/xhci.c). */
int xhci_port_count(struct xhci *hc);
bool xhci_port_connected(struct xhci *hc, int port);
/* Resets (USB2) or checks (USB3) a root port: the speed of the enabled port, or a negative error. */
int xhci_port_reset(struct xhci *hc, int port);
/* Gives a device a slot and an address (Enable Slot, Address Device), EP0 ready to use. */
int xhci_address_device(struct usb_dev *d);
/* Frees the device's slot (Disable Slot): after it is gone or before it is re-enumerated. */
void xhci_free_device(struct usb_dev *d);
/* Tells the controller a device is a hub (slot context Hub, ports, TT) before its ports are used. */
int xhci_set_hub(struct usb_dev *d, uint8_t nports, bool mtt, uint8_t tt_think);
/* Root port changes since the last call, as a bit mask (bit p = port p), cleared on read. */
uint32_t xhci_port_changes(struct xhci *hc);
const char *xhci_name(struct xhci *hc);
int xhci_index(struct xhci *hc);   /* 0, 1...: PCI discovery order, the N of xhciN */
const char *xhci_describe(struct xhci *hc);   /* "xhci0 (pci 00:04.0, 1b36:000d)" */
int xhci_port_proto(struct xhci *hc, int port);   /* USB major revision of a root port */
int xhci_count(void);
struct xhci *xhci_get(int i);
/* The PCI address of a controller, for matching the boot device path. */
void xhci_pci_addr(struct xhci *hc, uint8_t *bus, uint8_t *dev, uint8_t *fn);

/* USB core (drivers/usb.c). */
/* Set while the USB task runs (connects after boot): class drivers then defer what must wait
 * (a new disk's partition scan runs on a task of its own). */
extern bool usb_hotplug_running;
/* A root port of a new controller: enumerate what is connected (called by xhci's probe). */
void usb_root_port_changed(struct xhci *hc, int port);
/* Something for the USB task (a port changed, a class driver has work): it starts at the next
 * poll, if it is not running, and enumerates, detaches and steps class drivers' work there,
 * so that a slow device holds neither the console nor the pollers. */
void usb_kick(void);
/* The one wait of the USB drivers: wait_yielding on the USB task (the console and the other
 * disks go on meanwhile), wait_until elsewhere (boot, pollers, the block layer's recovery). */
int usb_wait(bool (*done)(void *ctx), void *ctx, uint32_t timeout_ms);
void usb_sleep_ms(uint32_t ms);   /* a delay likewise: yielding on the USB task, else spinning */
/* Re-enumerates a device in place (port reset, new address, same configuration): the last rung
 * of a class driver's recovery. 0 when it answers with the same descriptors. */
int usb_reset_device(struct usb_dev *d);
const char *usb_speed_name(enum usb_speed s);
int usb_dev_count(void);
struct usb_dev *usb_dev_get(int i);

#define USB_DIR_IN        0x80
#define USB_TYPE_CLASS    0x20
#define USB_RECIP_IFACE   0x01
#define USB_RECIP_EP      0x02
#define USB_RECIP_OTHER   0x03
#define USB_REQ_GET_STATUS 0
#define USB_REQ_CLEAR_FEATURE 1
#define USB_REQ_SET_FEATURE 3
#define USB_REQ_GET_DESCRIPTOR 6
#define USB_REQ_SET_CONFIGURATION 9
#define USB_REQ_SET_INTERFACE 11

#endif
