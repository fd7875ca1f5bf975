/* Walks RSDP -> XSDT (or RSDT) once at boot and keeps the few facts the kernel needs. Every
 * table is checksummed first: a corrupt table is ignored, not trusted. */
#include "acpi.h"
#include "log.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"

struct __attribute__((packed)) sdt_header {
	char sig[4];
	uint32_t length;
	uint8_t revision, checksum;
	char oem[6], oem_table[8];
	uint32_t oem_rev, creator, creator_rev;
};

static struct acpi_info info;

static int checksum_ok(const void *p, uint32_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;
	for (uint32_t i = 0; i < len; i++)
		sum += b[i];
	return sum == 0;
}

static void parse_mcfg(const struct sdt_header *h)
{
	/* 8 reserved bytes after the header, then 16-byte allocation entries. */
	const uint8_t *p = (const uint8_t *)h + sizeof(*h) + 8;
	const uint8_t *end = (const uint8_t *)h + h->length;
	for (; p + 16 <= end; p += 16) {
		uint64_t base;
		uint16_t seg;
		memcpy(&base, p, 8);
		memcpy(&seg, p + 8, 2);
		if (seg == 0 && !info.ecam_base) {
			info.ecam_base = base;
			info.ecam_bus_start = p[10];
			info.ecam_bus_end = p[11];
		}
	}
}

static void parse_fadt(const struct sdt_header *h)
{
	const uint8_t *p = (const uint8_t *)h;
	if (h->length >= 80) {
		uint32_t port;
		memcpy(&port, p + 76, 4);   /* PM_TMR_BLK */
		info.pm_timer_port = port;
	}
}

static void visit(uint64_t addr)
{
	const struct sdt_header *h = (const struct sdt_header *)(uintptr_t)addr;
	if (!h || h->length < sizeof(*h) || h->length > (1u << 20) || !checksum_ok(h, h->length))
		return;
	info.tables++;
	if (!memcmp(h->sig, "MCFG", 4))
		parse_mcfg(h);
	else if (!memcmp(h->sig, "FACP", 4))
		parse_fadt(h);
}

void acpi_init(void)
{
	const uint8_t *rsdp = (const uint8_t *)(uintptr_t)boot_info_get()->rsdp;
	if (!rsdp || memcmp(rsdp, "RSD PTR ", 8) || !checksum_ok(rsdp, 20)) {
		log_event(LOG_WARN, "acpi: no valid RSDP");
		return;
	}
	uint32_t rsdt;
	uint64_t xsdt = 0;
	memcpy(&rsdt, rsdp + 16, 4);
	if (rsdp[15] >= 2)
		memcpy(&xsdt, rsdp + 24, 8);
	const struct sdt_header *root = (const struct sdt_header *)(uintptr_t)(xsdt ? xsdt : rsdt);
	if (!root || !checksum_ok(root, root->length)) {
		log_event(LOG_WARN, "acpi: root table checksum is wrong");
		return;
	}
	unsigned width = xsdt ? 8 : 4;
	const uint8_t *e = (const uint8_t *)root + sizeof(*root);
	for (uint32_t off = 0; off + width <= root->length - sizeof(*root); off += width) {
		uint64_t a = 0;
		memcpy(&a, e + off, width);
		visit(a);
	}
}

const struct acpi_info *acpi_get(void)
{
	return &info;
}
