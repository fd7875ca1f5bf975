/* PCI: enumeration (ECAM from ACPI MCFG, legacy 0xCF8 ports as a fallback), config access,
 * BARs, capabilities, and driver binding through the pci_driver table. */
#ifndef KERNEL_PCI_H
#define KERNEL_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include "table.h"

struct pci_dev {
	uint16_t seg;
	uint8_t bus, dev, fn;
	uint16_t vendor, device, subsys_vendor, subsys_id;
	uint8_t class, subclass, progif, rev;
	uint64_t bar[6];        /* base address (memory or I/O port), 0 when absent */
	uint64_t bar_size[6];
	bool bar_is_io[6];
	bool bar_is_64[6];
	const char *driver;     /* name of the bound driver, NULL when none */
	void *driver_data;
};

uint8_t  pci_read8(struct pci_dev *d, uint16_t off);
uint16_t pci_read16(struct pci_dev *d, uint16_t off);
uint32_t pci_read32(struct pci_dev *d, uint16_t off);
void pci_write8(struct pci_dev *d, uint16_t off, uint8_t v);
void pci_write16(struct pci_dev *d, uint16_t off, uint16_t v);
void pci_write32(struct pci_dev *d, uint16_t off, uint32_t v);

/* Sets memory/I/O decoding and bus mastering in the command register; disables INTx. */
void pci_enable(struct pci_dev *d, bool mem, bool io, bool master);
/* Offset of the first capability with this id after the one at `after` (0 = from the start), 0 if
 * none; the walk is bounded (lib/pci_caps.c), so a looping chain still ends. */
uint8_t pci_find_cap(struct pci_dev *d, uint8_t cap_id, uint8_t after);
/* A pointer to a memory BAR (identity-mapped); NULL for an absent or I/O BAR. */
volatile void *pci_bar_ptr(struct pci_dev *d, int bar);

int pci_count(void);
struct pci_dev *pci_get(int i);

struct pci_driver {
	const char *name;
	bool (*match)(const struct pci_dev *d);
	int (*probe)(struct pci_dev *d);      /* 0 binds the driver (sets d->driver) */
};
#define PCI_DRIVER(id, name_, match_, probe_) \
	static const struct pci_driver __pcidrv_##id TABLE_ENTRY(pcidrv, id) = { name_, match_, probe_ }

void pci_scan(void);          /* enumerate every bus */
void pci_bind_drivers(void);  /* probe the table's drivers against every device */

#endif
