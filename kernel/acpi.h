/* The ACPI facts the kernel uses: MCFG (PCI ECAM) and FADT (PM timer); parsed by lib_acpi_parse.c. */
#ifndef KERNEL_ACPI_H
#define KERNEL_ACPI_H
#include <stdint.h>

struct acpi_info {
	uint64_t ecam_base;          /* segment 0's ECAM window, 0 when there is no MCFG */
	uint8_t ecam_bus_start, ecam_bus_end;
	uint32_t pm_timer_port;      /* ACPI PM timer I/O port, 0 when absent */
	int tables;                  /* tables found in the XSDT/RSDT */
};

void acpi_init(void);
const struct acpi_info *acpi_get(void);
#endif
