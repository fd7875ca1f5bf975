/* USB descriptor and SCSI reply parsing. Every length comes from the device, so every read is
 * bounded by the bytes actually received; nothing here trusts bLength or wTotalLength. */
#include "usbdesc.h"
#include "errors.h"
#include "port.h"
#include "text.h"

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

int usbd_parse_device(const uint8_t *b, size_t len, struct usbd_device *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 8 || b[0] < 8 || b[1] != 1)
		return -E_CORRUPT;
	out->bcd_usb = le16(b + 2);
	out->cls = b[4];
	out->subcls = b[5];
	out->proto = b[6];
	out->mps0 = b[7];
	if (len < 18 || b[0] < 18)
		return 0;   /* the first 8 bytes only (bMaxPacketSize0 is all they are read for) */
	out->vid = le16(b + 8);
	out->pid = le16(b + 10);
	out->bcd_dev = le16(b + 12);
	out->i_manufacturer = b[14];
	out->i_product = b[15];
	out->i_serial = b[16];
	out->nconfigs = b[17];
	return 0;
}

uint16_t usbd_config_total(const uint8_t *b, size_t len)
{
	if (len < 9 || b[0] < 9 || b[1] != 2 || le16(b + 2) < 9)
		return 0;
	return le16(b + 2);
}

int usbd_parse_config(const uint8_t *b, size_t len, struct usbd_config *out)
{
	memset(out, 0, sizeof(*out));
	uint16_t total = usbd_config_total(b, len);
	if (!total)
		return -E_CORRUPT;
	if (len > total)
		len = total;
	out->value = b[5];
	out->attributes = b[7];
	out->max_power = b[8];
	struct usbd_iface *cur = NULL;
	struct usbd_ep *last_ep = NULL;
	for (size_t off = b[0]; off + 2 <= len;) {
		const uint8_t *d = b + off;
		uint8_t dl = d[0], type = d[1];
		if (dl < 2 || dl > len - off)
			break;
		if (type == 4 && dl >= 9) {   /* interface */
			last_ep = NULL;
			cur = NULL;
			if (out->niface < USBD_MAX_IFACES) {
				cur = &out->iface[out->niface++];
				cur->num = d[2];
				cur->alt = d[3];
				cur->cls = d[5];
				cur->subcls = d[6];
				cur->proto = d[7];
			}
		} else if (type == 5 && dl >= 7 && cur) {   /* endpoint */
			last_ep = NULL;
			if (cur->neps < USBD_MAX_EPS && (d[2] & 0x0f)) {
				struct usbd_ep *e = &cur->ep[cur->neps++];
				e->addr = d[2];
				e->type = d[3] & 3;
				e->mps = le16(d + 4) & 0x7ff;
				e->mult = (le16(d + 4) >> 11) & 3;
				e->interval = d[6];
				last_ep = e;
			}
		} else if (type == 0x30 && dl >= 6 && last_ep) {   /* SuperSpeed endpoint companion */
			last_ep->max_burst = d[2] > 15 ? 15 : d[2];
			if (last_ep->type == 2)
				last_ep->max_streams = d[3] & 0x1f;
		} else if (type == 0x24 && dl >= 4 && last_ep && cur && cur->cls == 8 && cur->proto == 0x62) {
			last_ep->pipe_id = d[2];   /* UAS pipe usage (class-specific, after its endpoint) */
		}
		off += dl;
	}
	return 0;
}

int usbd_string_ascii(const uint8_t *b, size_t len, char *out, size_t outlen)
{
	if (!outlen)
		return 0;
	size_t n = 0;
	if (len >= 2 && b[1] == 3) {
		size_t dl = b[0] < len ? b[0] : len;
		for (size_t i = 2; i + 1 < dl && n + 1 < outlen; i += 2) {
			uint16_t c = le16(b + i);
			out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	return (int)n;
}

int usbd_parse_hub(const uint8_t *b, size_t len, struct usbd_hub *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 7 || b[0] < 7 || (b[1] != 0x29 && b[1] != 0x2a) || !b[2])
		return -E_CORRUPT;
	out->nports = b[2] > 15 ? 15 : b[2];   /* a route string names ports 1..15 */
	out->characteristics = le16(b + 3);
	out->pwr_on_ms = (uint16_t)(b[5] * 2);
	return 0;
}

int scsi_parse_inquiry(const uint8_t *b, size_t len, struct scsi_inquiry *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 36)
		return -E_CORRUPT;
	out->type = b[0] & 0x1f;
	out->removable = b[1] >> 7;
	text_field(out->vendor, b + 8, 8, ' ');
	text_field(out->product, b + 16, 16, ' ');
	text_field(out->rev, b + 32, 4, ' ');
	return (b[0] >> 5) == 0 ? 0 : -E_NOENT;   /* peripheral qualifier: no device at this LUN */
}

static int lsize_ok(uint32_t s)
{
	return s >= 512 && s <= 65536 && !(s & (s - 1));
}

int scsi_parse_capacity10(const uint8_t *b, size_t len, uint64_t *sectors, uint32_t *lsize)
{
	if (len < 8 || !lsize_ok(be32(b + 4)))
		return -E_CORRUPT;
	*sectors = (uint64_t)be32(b) + 1;
	*lsize = be32(b + 4);
	return 0;
}

int scsi_parse_capacity16(const uint8_t *b, size_t len, uint64_t *sectors, uint32_t *lsize,
			  uint32_t *psize)
{
	if (len < 14 || !lsize_ok(be32(b + 8)) || be64(b) == UINT64_MAX)
		return -E_CORRUPT;
	*sectors = be64(b) + 1;
	*lsize = be32(b + 8);
	unsigned exp = b[13] & 0x0f;   /* logical blocks per physical block exponent */
	*psize = exp <= 7 && (uint64_t)*lsize << exp <= 65536 ? *lsize << exp : *lsize;
	return 0;
}

int scsi_parse_sense(const uint8_t *b, size_t len, struct scsi_sense *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 2)
		return -E_CORRUPT;
	uint8_t code = b[0] & 0x7f;
	if (code == 0x70 || code == 0x71) {   /* fixed format */
		if (len < 14)
			return len >= 3 ? (out->key = b[2] & 0x0f, 0) : -E_CORRUPT;
		out->key = b[2] & 0x0f;
		out->asc = b[12];
		out->ascq = b[13];
		out->info_valid = b[0] >> 7;
		out->info = be32(b + 3);
		return 0;
	}
	if (code == 0x72 || code == 0x73) {   /* descriptor format: look for the information descriptor */
		if (len < 8)
			return -E_CORRUPT;
		out->key = b[1] & 0x0f;
		out->asc = b[2];
		out->ascq = b[3];
		size_t end = 8 + (size_t)b[7];
		if (end > len)
			end = len;
		for (size_t off = 8; off + 2 <= end;) {
			size_t dl = 2 + (size_t)b[off + 1];
			if (off + dl > end)
				break;
			if (b[off] == 0 && dl >= 12) {
				out->info_valid = b[off + 2] >> 7;
				out->info = be64(b + off + 4);
			}
			if (b[off] == 0x09 && dl >= 14) {   /* ATA Status Return */
				out->ata_valid = 1;
				out->ata_error = b[off + 3];
				out->ata_lba_mid = b[off + 9];
				out->ata_lba_high = b[off + 11];
				out->ata_status = b[off + 13];
			}
			off += dl;
		}
		return 0;
	}
	return -E_CORRUPT;
}

int ata_identify_strings(const uint8_t *id, size_t len, char model[41], char serial[21], char fw[9])
{
	model[0] = serial[0] = fw[0] = '\0';
	if (len < 512 || (id[1] & 0x80))
		return -E_CORRUPT;
	if (id[510] == 0xa5) {
		uint8_t sum = 0;
		for (int i = 0; i < 512; i++)
			sum = (uint8_t)(sum + id[i]);
		if (sum)
			return -E_CORRUPT;
	}
	text_field_ata(serial, id + 20, 10, ' ');
	text_field_ata(fw, id + 46, 4, ' ');
	text_field_ata(model, id + 54, 20, ' ');
	return model[0] ? 0 : -E_CORRUPT;
}
