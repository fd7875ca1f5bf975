/* NVMe Identify and log page parsing (pure: in the image and in the host fuzzer and tests).
 * A controller answering nonsense (a format index past its list, a sector size of 2^40, MDTS
 * that would shift past 64 bits) gets its namespace refused with the reason or the value
 * clamped, never used to size a transfer. */
#include "nvme_id.h"
#include "errors.h"
#include "port.h"
#include "text.h"

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* A 128-bit little-endian counter, saturated to 64 bits. */
static uint64_t le128_sat(const uint8_t *p)
{
	return le64(p + 8) ? UINT64_MAX : le64(p);
}

void nvme_ctrl_id_parse(const uint8_t id[NVME_ID_SIZE], unsigned page_shift, uint32_t limit,
			struct nvme_ctrl_id *c)
{
	memset(c, 0, sizeof(*c));
	text_field(c->serial, id + 4, 20, '?');
	text_field(c->model, id + 24, 40, '?');
	text_field(c->firmware, id + 64, 8, '?');
	/* MDTS: 2^n pages; 0 is no limit. Shifts past the driver's limit are the limit. */
	c->max_bytes = limit;
	uint8_t mdts = id[77];
	if (mdts && page_shift + mdts < 32 && (1ull << (page_shift + mdts)) < limit)
		c->max_bytes = (uint32_t)(1ull << (page_shift + mdts));
	c->vwc = id[525] & 1;
	c->err_entries = id[262] + 1u < 64 ? id[262] + 1u : 64;
	uint32_t ms = le32(id + 88) / 1000;   /* RTD3E is in microseconds */
	c->shutdown_ms = ms < NVME_SHUTDOWN_MIN_MS ? NVME_SHUTDOWN_MIN_MS :
			 ms > NVME_SHUTDOWN_MAX_MS ? NVME_SHUTDOWN_MAX_MS : ms;
	c->nn = le32(id + 516);
}

/* fmt takes up to two %u. */
static int refuse(char *why, size_t whylen, int rc, const char *fmt, unsigned a, unsigned b)
{
	if (whylen)
		fmt_snprintf(why, whylen, fmt, a, b);
	return rc;
}

int nvme_ns_id_parse(const uint8_t id[NVME_ID_SIZE], struct nvme_ns_id *ns, char *why, size_t whylen)
{
	memset(ns, 0, sizeof(*ns));
	if (whylen)
		why[0] = '\0';
	ns->nsze = le64(id);
	if (!ns->nsze)
		return 1;
	ns->ncap = le64(id + 8);
	ns->nuse = le64(id + 16);
	if (ns->ncap > ns->nsze)
		ns->ncap = ns->nsze;
	if (ns->nuse > ns->ncap)
		ns->nuse = ns->ncap;
	unsigned nformats = id[25] + 1u;   /* NLBAF is 0-based; 64 at most (NVMe 2.0) */
	if (nformats > 64)
		return refuse(why, whylen, -E_CORRUPT, "NLBAF %u is past the 64 LBA formats", id[25], 0);
	/* FLBAS bits 3:0, and bits 6:5 above them when there are more than 16 formats. */
	unsigned fmt = id[26] & 0xf;
	if (nformats > 16)
		fmt |= ((id[26] >> 5) & 3u) << 4;
	if (fmt >= nformats)
		return refuse(why, whylen, -E_CORRUPT, "FLBAS selects LBA format %u of %u", fmt, nformats);
	ns->format = fmt;
	uint32_t lbaf = le32(id + 128 + 4 * fmt);
	unsigned ms = lbaf & 0xffff, lbads = (lbaf >> 16) & 0xff;
	if (lbads < 9 || lbads > 16)
		return refuse(why, whylen, -E_UNSUPP, "LBADS %u (sectors must be 512 B..64 KiB)", lbads, 0);
	if (ms)
		return refuse(why, whylen, -E_UNSUPP, "%u bytes of metadata per sector", ms, 0);
	ns->lsize = 1u << lbads;
	if (ns->nsze > UINT64_MAX >> lbads)
		return refuse(why, whylen, -E_CORRUPT, "a size past 2^64 bytes", 0, 0);
	static const uint8_t zero[16];
	if (memcmp(id + 104, zero, 16)) {
		memcpy(ns->wwn, id + 104, 16);
		ns->wwn_len = 16;
	} else if (memcmp(id + 120, zero, 8)) {
		memcpy(ns->wwn, id + 120, 8);
		ns->wwn_len = 8;
	}
	return 0;
}

int nvme_ns_list_parse(const uint8_t list[NVME_ID_SIZE], uint32_t *ids, int max)
{
	int n = 0;
	uint32_t last = 0;
	for (unsigned i = 0; i < NVME_ID_SIZE / 4 && n < max; i++) {
		uint32_t v = le32(list + 4 * i);
		/* 0 ends the list; FFFFFFFFh is the broadcast id, never a namespace. */
		if (!v || v <= last || v == 0xffffffffu)
			break;
		ids[n++] = last = v;
	}
	return n;
}

void nvme_health_parse(const uint8_t log[NVME_HEALTH_SIZE], struct nvme_health *h)
{
	memset(h, 0, sizeof(*h));
	h->warnings = log[0];
	uint16_t kelvin = le16(log + 1);
	h->temperature_c = kelvin ? (int)kelvin - 273 : -1000;
	h->spare = log[3];
	h->spare_threshold = log[4];
	h->used = log[5];
	h->unsafe_shutdowns = le128_sat(log + 144);
	h->power_on_hours = le128_sat(log + 128);
	h->media_errors = le128_sat(log + 160);
}
