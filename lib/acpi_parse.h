/* ACPI table parsing as pure code: RSDP, XSDT/RSDT, MCFG, FADT, each checked (signature, length,
 * checksum, revision, every offset against the table's own length) before a field is used. */
#ifndef KERNEL_LIB_ACPI_PARSE_H
#define KERNEL_LIB_ACPI_PARSE_H

#include <stdint.h>

#define ACPI_TABLE_MAX (1u << 20)   /* a longer table is taken for garbage */

struct acpi_facts {
	uint64_t ecam_base;          /* segment 0's ECAM window (for bus 0), 0 when no usable MCFG */
	uint8_t ecam_bus_start, ecam_bus_end;
	uint32_t pm_timer_port;      /* ACPI PM timer I/O port, 0 when absent or unusable */
	int tables;                  /* tables in the XSDT/RSDT that passed their checks */
	int bad;                     /* entries refused (each one named through `note`) */
	char root[5];                /* "XSDT", "RSDT", or "" when neither was usable */
	uint8_t rsdp_revision;
};

/* Physical memory as the firmware left it: `map` returns a pointer to `len` readable bytes at
 * `addr`, or NULL when that range is not memory the tables may live in. */
struct acpi_mem {
	const void *(*map)(void *ctx, uint64_t addr, uint32_t len);
	void *ctx;
	/* Called once per problem with a one-line message (no newline); may be NULL. */
	void (*note)(void *ctx, const char *msg);
};

/* Walks RSDP -> XSDT (RSDT when the XSDT is absent or broken) -> MCFG, FADT. Returns 0, or
 * -E_NOENT / -E_CRC / -E_CORRUPT when no root table is usable (facts stay zero but `bad`). */
int acpi_parse(const struct acpi_mem *m, uint64_t rsdp_addr, struct acpi_facts *out);

#endif
