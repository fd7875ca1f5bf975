/* ACPI table parsing (pure: built into the image and into the host fuzzer). Firmware gets these
 * tables wrong on real boards, so nothing is read before the bytes holding it are known to lie
 * inside a table whose length, checksum and place in memory passed their checks. */
#include "acpi_parse.h"
#include "errors.h"
#include "port.h"

#define SDT_HEADER 36u
#define RSDP_V1_LEN 20u
#define RSDP_V2_LEN 36u
#define RSDP_MAX_LEN 4096u
#define MCFG_FIRST_ENTRY 44u         /* header, then 8 reserved bytes */
#define MCFG_ENTRY 16u
#define PHYS_LIMIT (1ULL << 52)     /* x86-64's widest physical address */
/* FADT offsets (ACPI 6.x, 5.2.9) */
#define FADT_PM_TMR_BLK 76u
#define FADT_PM_TMR_LEN 91u
#define FADT_FLAGS 112u
#define FADT_X_PM_TMR_BLK 208u
#define FADT_HW_REDUCED (1u << 20)
#define GAS_LEN 12u
#define GAS_SYSTEM_IO 1u

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static void note(const struct acpi_mem *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const struct acpi_mem *m, const char *fmt, ...)
{
	if (!m->note)
		return;
	char msg[160];
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m->note(m->ctx, msg);
}

static uint8_t sum8(const uint8_t *p, uint32_t len)
{
	uint8_t s = 0;
	for (uint32_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* A signature fit to print: firmware garbage must not reach the console as control bytes. */
static void sig_str(char out[5], const uint8_t *sig)
{
	for (int i = 0; i < 4; i++)
		out[i] = sig[i] >= 0x20 && sig[i] < 0x7f ? (char)sig[i] : '?';
	out[4] = '\0';
}

/* The table at addr, its header's length and checksum checked; NULL (named) when unusable.
 * want: the signature it must have, or NULL for any. */
static const uint8_t *get_table(const struct acpi_mem *m, uint64_t addr, const char *want,
				const char *what, uint32_t *len_out)
{
	if (!addr) {
		note(m, "%s: null pointer, ignored", what);
		return NULL;
	}
	const uint8_t *h = m->map(m->ctx, addr, SDT_HEADER);
	if (!h) {
		note(m, "%s: 0x%llx is outside the memory map, ignored", what, (unsigned long long)addr);
		return NULL;
	}
	char sig[5];
	sig_str(sig, h);
	if (want && memcmp(h, want, 4)) {
		note(m, "%s at 0x%llx: signature '%s', not %s, ignored", what, (unsigned long long)addr,
		     sig, want);
		return NULL;
	}
	uint32_t len = le32(h + 4);
	if (len < SDT_HEADER || len > ACPI_TABLE_MAX) {
		note(m, "%s %s at 0x%llx: length %u is impossible, ignored", what, sig,
		     (unsigned long long)addr, len);
		return NULL;
	}
	h = m->map(m->ctx, addr, len);
	if (!h) {
		note(m, "%s %s at 0x%llx: its %u bytes run outside the memory map, ignored", what, sig,
		     (unsigned long long)addr, len);
		return NULL;
	}
	if (sum8(h, len)) {
		note(m, "%s %s at 0x%llx: checksum mismatch, ignored", what, sig,
		     (unsigned long long)addr);
		return NULL;
	}
	*len_out = len;
	return h;
}

static void parse_mcfg(const struct acpi_mem *m, const uint8_t *t, uint32_t len, struct acpi_facts *f)
{
	if (len < MCFG_FIRST_ENTRY + MCFG_ENTRY) {
		note(m, "MCFG: %u bytes hold no allocation entry, ignored", len);
		return;
	}
	if ((len - MCFG_FIRST_ENTRY) % MCFG_ENTRY)
		note(m, "MCFG: length %u leaves a partial entry, its tail ignored", len);
	for (uint32_t off = MCFG_FIRST_ENTRY; off + MCFG_ENTRY <= len; off += MCFG_ENTRY) {
		const uint8_t *e = t + off;
		uint64_t base = le64(e);
		uint16_t seg = le16(e + 8);
		uint8_t start = e[10], end = e[11];
		if (seg != 0 || f->ecam_base)
			continue;   /* this kernel reaches segment 0 only; the first usable entry wins */
		uint64_t top = base + (((uint64_t)end + 1) << 20);
		if (!base || (base & 0xfffff) || start > end || top > PHYS_LIMIT || top < base) {
			note(m, "MCFG: segment 0 window 0x%llx buses %u-%u is impossible, ignored",
			     (unsigned long long)base, start, end);
			continue;
		}
		f->ecam_base = base;
		f->ecam_bus_start = start;
		f->ecam_bus_end = end;
	}
}

static void parse_fadt(const struct acpi_mem *m, const uint8_t *t, uint32_t len, struct acpi_facts *f)
{
	if (f->pm_timer_port)
		return;   /* a second FADT: the first one stands */
	if (len >= FADT_FLAGS + 4 && (le32(t + FADT_FLAGS) & FADT_HW_REDUCED))
		return;   /* hardware-reduced ACPI: no PM timer by definition */
	uint64_t port = 0;
	/* The 64-bit X_PM_TMR_BLK (revision 3 on) wins when it is an I/O port. */
	if (t[8] >= 3 && len >= FADT_X_PM_TMR_BLK + GAS_LEN) {
		const uint8_t *gas = t + FADT_X_PM_TMR_BLK;
		if (le64(gas + 4) && gas[0] == GAS_SYSTEM_IO)
			port = le64(gas + 4);
	}
	if (!port && len >= FADT_PM_TMR_BLK + 4) {
		port = le32(t + FADT_PM_TMR_BLK);
		if (port && len > FADT_PM_TMR_LEN && t[FADT_PM_TMR_LEN] != 4) {
			note(m, "FACP: PM timer block of %u bytes (not 4), timer not used", t[FADT_PM_TMR_LEN]);
			return;
		}
	}
	if (port > 0xfffc) {
		note(m, "FACP: PM timer at 0x%llx is no I/O port, timer not used", (unsigned long long)port);
		return;
	}
	f->pm_timer_port = (uint32_t)port;
}

/* The RSDP's pointers: *xsdt is 0 unless revision 2 and its extended checksum hold. */
static int parse_rsdp(const struct acpi_mem *m, uint64_t addr, struct acpi_facts *f, uint32_t *rsdt,
		      uint64_t *xsdt)
{
	const uint8_t *r = addr ? m->map(m->ctx, addr, RSDP_V1_LEN) : NULL;
	if (!r) {
		note(m, "RSDP: none at 0x%llx", (unsigned long long)addr);
		return -E_NOENT;
	}
	if (memcmp(r, "RSD PTR ", 8)) {
		note(m, "RSDP at 0x%llx: no signature", (unsigned long long)addr);
		return -E_NOENT;
	}
	if (sum8(r, RSDP_V1_LEN)) {
		note(m, "RSDP at 0x%llx: checksum mismatch", (unsigned long long)addr);
		return -E_CRC;
	}
	f->rsdp_revision = r[15];
	*rsdt = le32(r + 16);
	*xsdt = 0;
	if (r[15] < 2)
		return 0;   /* ACPI 1.0: RSDT only */
	const uint8_t *r2 = m->map(m->ctx, addr, RSDP_V2_LEN);
	uint32_t len = r2 ? le32(r2 + 20) : 0;
	if (!r2 || len < RSDP_V2_LEN || len > RSDP_MAX_LEN || !(r2 = m->map(m->ctx, addr, len))) {
		note(m, "RSDP revision %u: length %u is impossible, using the RSDT", r[15], len);
		return 0;
	}
	if (sum8(r2, len)) {
		note(m, "RSDP revision %u: extended checksum mismatch, using the RSDT", r[15]);
		return 0;
	}
	*xsdt = le64(r2 + 24);
	return 0;
}

int acpi_parse(const struct acpi_mem *m, uint64_t rsdp_addr, struct acpi_facts *out)
{
	memset(out, 0, sizeof(*out));
	uint32_t rsdt;
	uint64_t xsdt;
	int rc = parse_rsdp(m, rsdp_addr, out, &rsdt, &xsdt);
	if (rc < 0)
		return rc;
	uint32_t len = 0;
	const uint8_t *root = NULL;
	unsigned width = 8;
	if (xsdt) {
		root = get_table(m, xsdt, "XSDT", "root table", &len);
		if (!root)
			out->bad++;
		if (!root && rsdt)
			note(m, "using the RSDT at 0x%x instead", rsdt);
	}
	if (!root && rsdt) {
		width = 4;
		root = get_table(m, rsdt, "RSDT", "root table", &len);
		if (!root)
			out->bad++;
	}
	if (!root) {
		if (!rsdt && !xsdt)
			note(m, "RSDP names no root table");
		return -E_CORRUPT;
	}
	memcpy(out->root, width == 8 ? "XSDT" : "RSDT", 5);
	if ((len - SDT_HEADER) % width)
		note(m, "%s: length %u leaves a partial entry, its tail ignored", out->root, len);
	for (uint32_t off = SDT_HEADER, i = 0; off + width <= len; off += width, i++) {
		uint64_t a = width == 8 ? le64(root + off) : le32(root + off);
		char what[24];
		fmt_snprintf(what, sizeof(what), "%s entry %u", out->root, i);
		uint32_t tlen;
		const uint8_t *t = get_table(m, a, NULL, what, &tlen);
		if (!t) {
			out->bad++;
			continue;
		}
		out->tables++;
		if (!memcmp(t, "MCFG", 4))
			parse_mcfg(m, t, tlen, out);
		else if (!memcmp(t, "FACP", 4))
			parse_fadt(m, t, tlen, out);
	}
	return 0;
}
