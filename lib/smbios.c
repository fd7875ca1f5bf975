/* SMBIOS parsing (lib/smbios.h). Every structure's length and string set is bounded by the
 * table before it is read; the walk stops at the end-of-table structure or the table's end. */
#include "smbios.h"
#include "errors.h"

#define TABLE_MAX (1u << 20)

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static bool sum_zero(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s == 0;
}

int smbios_entry(const uint8_t *ep, size_t avail, uint64_t *addr, uint32_t *len)
{
	if (avail >= 24 && !memcmp(ep, "_SM3_", 5)) {
		uint8_t n = ep[6];
		if (n < 24 || n > avail)
			return -E_CORRUPT;
		if (!sum_zero(ep, n))
			return -E_CRC;
		*len = le32(ep + 12);   /* the table's maximum size */
		*addr = le32(ep + 16) | (uint64_t)le32(ep + 20) << 32;
	} else if (avail >= 31 && !memcmp(ep, "_SM_", 4)) {
		uint8_t n = ep[5];
		if (n < 31 || n > avail)
			return -E_CORRUPT;
		if (!sum_zero(ep, n) || memcmp(ep + 16, "_DMI_", 5) || !sum_zero(ep + 16, 15))
			return -E_CRC;
		*len = ep[22] | ep[23] << 8;
		*addr = le32(ep + 24);
	} else {
		return -E_NOENT;
	}
	if (*len < 4 || !*addr)
		return -E_CORRUPT;
	if (*len > TABLE_MAX)
		*len = TABLE_MAX;
	return 0;
}

/* String k (1-based) of the set from s to end (its double NUL), as printable ASCII. */
static void get_string(const uint8_t *s, const uint8_t *end, unsigned k, char *out, size_t n)
{
	static const char *const placeholders[] = { "To Be Filled By O.E.M.", "Default string", "Not Specified",
						    "System Serial Number", "None", "0", "" };
	out[0] = 0;
	if (!k)
		return;
	for (unsigned i = 1; s < end && i < k; i++)
		while (s < end && *s++) {
		}
	size_t m = 0;
	for (; s < end && *s && m + 1 < n; s++)
		if (*s >= 32 && *s < 127)
			out[m++] = (char)*s;
	while (m && out[m - 1] == ' ')
		m--;
	out[m] = 0;
	for (size_t i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++)
		if (!strcmp(out, placeholders[i]))
			out[0] = 0;
}

int smbios_system(const uint8_t *t, size_t len, struct smbios_system *out)
{
	memset(out, 0, sizeof(*out));
	size_t p = 0;
	while (p + 4 <= len) {
		uint8_t type = t[p], slen = t[p + 1];
		if (slen < 4 || slen > len - p)
			return -E_CORRUPT;
		size_t q = p + slen;   /* the string set: up to a double NUL */
		while (q + 1 < len && (t[q] || t[q + 1]))
			q++;
		if (q + 1 >= len)
			return -E_CORRUPT;
		if (type == 1 && slen >= 8) {
			const uint8_t *s = t + p + slen, *end = t + q + 1;
			get_string(s, end, t[p + 4], out->manufacturer, sizeof(out->manufacturer));
			get_string(s, end, t[p + 5], out->product, sizeof(out->product));
			get_string(s, end, t[p + 7], out->serial, sizeof(out->serial));
			return 0;
		}
		if (type == 127)
			break;
		p = q + 2;
	}
	return -E_NOENT;
}
