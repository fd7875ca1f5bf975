/* USB descriptor and SCSI reply parsing: pure code over untrusted bytes (a device writes them),
 * shared by the appliance's USB drivers, the host unit tests and the fuzzer. */
#ifndef KERNEL_LIB_USBDESC_H
#define KERNEL_LIB_USBDESC_H

#include <stddef.h>
#include <stdint.h>

#define USBD_MAX_IFACES 8
#define USBD_MAX_EPS    6   /* per interface */

struct usbd_device {
	uint16_t bcd_usb, vid, pid, bcd_dev;
	uint8_t cls, subcls, proto, mps0;     /* mps0: the raw bMaxPacketSize0 */
	uint8_t i_manufacturer, i_product, i_serial, nconfigs;
};

struct usbd_ep {
	uint8_t addr;        /* bEndpointAddress: bit 7 = IN */
	uint8_t type;        /* 0 control, 1 isochronous, 2 bulk, 3 interrupt */
	uint16_t mps;        /* wMaxPacketSize bits 10:0 */
	uint8_t mult;        /* high-bandwidth transactions (bits 12:11) */
	uint8_t interval;
	uint8_t max_burst;   /* SuperSpeed companion, 0 when none */
	uint8_t max_streams; /* log2 of bulk streams from the companion, 0 when none */
	uint8_t pipe_id;     /* UAS pipe usage descriptor (1 command, 2 status, 3 data-in, 4 data-out), 0 when none */
};

struct usbd_iface {
	uint8_t num, alt, cls, subcls, proto, neps;
	struct usbd_ep ep[USBD_MAX_EPS];
};

struct usbd_config {
	uint8_t value, attributes, max_power;
	uint8_t niface;            /* interfaces kept (every alternate setting is its own entry) */
	struct usbd_iface iface[USBD_MAX_IFACES];
};

/* 0, or -E_CORRUPT when the bytes are not a device descriptor. */
int usbd_parse_device(const uint8_t *b, size_t len, struct usbd_device *out);
/* A full configuration descriptor (wTotalLength bytes, len the bytes actually received). Walks
 * the descriptors by their bLength, never past len; a descriptor whose length is below 2 or
 * beyond the buffer ends the walk (what came before it is kept). -E_CORRUPT when the head
 * itself is bad. */
int usbd_parse_config(const uint8_t *b, size_t len, struct usbd_config *out);
/* wTotalLength of a configuration descriptor head, 0 when the head is bad. */
uint16_t usbd_config_total(const uint8_t *b, size_t len);
/* A string descriptor as printable ASCII (others become '?'), trailing blanks dropped.
 * Returns the length written (out always NUL-terminated when outlen > 0). */
int usbd_string_ascii(const uint8_t *b, size_t len, char *out, size_t outlen);

/* A hub descriptor (USB 2 0x29 or USB 3 0x2A): ports, characteristics, power-on delay in ms. */
struct usbd_hub { uint8_t nports; uint16_t characteristics; uint16_t pwr_on_ms; };
int usbd_parse_hub(const uint8_t *b, size_t len, struct usbd_hub *out);

/* SCSI replies (a bridge writes them: untrusted too). */
struct scsi_inquiry { uint8_t type, removable; char vendor[9], product[17], rev[5]; };
int scsi_parse_inquiry(const uint8_t *b, size_t len, struct scsi_inquiry *out);
/* READ CAPACITY (10) / (16): sectors (last LBA + 1), logical and physical sector sizes.
 * -E_CORRUPT for a sector size that is not a power of two in 512..65536. */
int scsi_parse_capacity10(const uint8_t *b, size_t len, uint64_t *sectors, uint32_t *lsize);
int scsi_parse_capacity16(const uint8_t *b, size_t len, uint64_t *sectors, uint32_t *lsize,
			  uint32_t *psize);
/* Fixed or descriptor sense data: key, ASC, ASCQ and the information field (the failing LBA of
 * a medium error) when the device marks it valid. -E_CORRUPT when it is not sense data. */
/* ata_valid: an ATA Status Return descriptor (SAT, after a pass-through with CK_COND) gave the
 * drive's registers: status, error and the LBA mid/high bytes (SMART RETURN STATUS answers in
 * those: 4Fh/C2h healthy, F4h/2Ch threshold exceeded). */
struct scsi_sense {
	uint8_t key, asc, ascq;
	int info_valid;
	uint64_t info;
	int ata_valid;
	uint8_t ata_status, ata_error, ata_lba_mid, ata_lba_high;
};
int scsi_parse_sense(const uint8_t *b, size_t len, struct scsi_sense *out);

/* An ATA IDENTIFY DEVICE block (512 bytes, from a SAT bridge's ATA PASS-THROUGH): model, serial
 * and firmware (byte-swapped ATA strings, trimmed). -E_CORRUPT when it is short, not an ATA
 * device (word 0 bit 15), or its integrity word (A5h signature) does not sum to zero. */
int ata_identify_strings(const uint8_t *id, size_t len, char model[41], char serial[21], char fw[9]);

#endif
