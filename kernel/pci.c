/* PCI enumeration and configuration access: memory-mapped ECAM from ACPI's MCFG where the
 * firmware offers it (the whole 4 KiB space), else the legacy 0xCF8/0xCFC ports (256 bytes);
 * BAR sizing, capabilities and driver binding. */
#include "pci.h"
#include "acpi.h"
#include "console.h"
#include "io.h"
#include "../lib/pci_caps.h"
#include "mem.h"
#include "shell.h"
#include "../lib/errors.h"

#define MAX_PCI 128
static struct pci_dev devs[MAX_PCI];
static int ndevs;

static uint32_t cfg_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	return 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 | (off & 0xfc);
}

static volatile uint8_t *ecam;          /* NULL: legacy ports */
static uint8_t ecam_bus_end;

static volatile uint32_t *ecam_reg(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	return (volatile uint32_t *)(ecam + ((uint64_t)bus << 20 | (uint64_t)dev << 15 |
					     (uint64_t)fn << 12 | (off & 0xffc)));
}

static uint32_t raw_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	if (ecam && bus <= ecam_bus_end)
		return *ecam_reg(bus, dev, fn, off);
	if (off >= 256)
		return 0xffffffff;
	outl(0xCF8, cfg_addr(bus, dev, fn, off));
	return inl(0xCFC);
}

uint32_t pci_read32(struct pci_dev *d, uint16_t off)
{
	return raw_read32(d->bus, d->dev, d->fn, off);
}

uint16_t pci_read16(struct pci_dev *d, uint16_t off)
{
	return (uint16_t)(pci_read32(d, off & ~3) >> ((off & 2) * 8));
}

uint8_t pci_read8(struct pci_dev *d, uint16_t off)
{
	return (uint8_t)(pci_read32(d, off & ~3) >> ((off & 3) * 8));
}

void pci_write32(struct pci_dev *d, uint16_t off, uint32_t v)
{
	if (ecam && d->bus <= ecam_bus_end) {
		*ecam_reg(d->bus, d->dev, d->fn, off) = v;
		return;
	}
	outl(0xCF8, cfg_addr(d->bus, d->dev, d->fn, off));
	outl(0xCFC, v);
}

/* Narrow writes stay narrow: a dword read-modify-write would write back write-1-to-clear
 * status bits beside the register meant. */
void pci_write16(struct pci_dev *d, uint16_t off, uint16_t v)
{
	if (ecam && d->bus <= ecam_bus_end) {
		*(volatile uint16_t *)((volatile uint8_t *)ecam_reg(d->bus, d->dev, d->fn, off) + (off & 2)) = v;
		return;
	}
	outl(0xCF8, cfg_addr(d->bus, d->dev, d->fn, off));
	outw(0xCFC + (off & 2), v);
}

void pci_write8(struct pci_dev *d, uint16_t off, uint8_t v)
{
	if (ecam && d->bus <= ecam_bus_end) {
		*((volatile uint8_t *)ecam_reg(d->bus, d->dev, d->fn, off) + (off & 3)) = v;
		return;
	}
	outl(0xCF8, cfg_addr(d->bus, d->dev, d->fn, off));
	outb(0xCFC + (off & 3), v);
}

void pci_enable(struct pci_dev *d, bool mem, bool io, bool master)
{
	uint16_t cmd = pci_read16(d, 0x04);
	cmd |= (io ? 1 : 0) | (mem ? 2 : 0) | (master ? 4 : 0);
	cmd |= 1u << 10;   /* INTx off: every driver polls */
	pci_write16(d, 0x04, cmd);
}

static uint8_t cfg_read8(void *ctx, uint16_t off)
{
	return pci_read8(ctx, off);
}

uint8_t pci_find_cap(struct pci_dev *d, uint8_t cap_id, uint8_t after)
{
	return pci_caps_find(cfg_read8, d, cap_id, after);
}

volatile void *pci_bar_ptr(struct pci_dev *d, int bar)
{
	if (bar < 0 || bar > 5 || d->bar_is_io[bar] || !d->bar[bar])
		return NULL;
	return (volatile void *)(uintptr_t)d->bar[bar];
}

/* Sizing writes all-ones with decoding off, so the device never answers at a bogus address. */
static void size_bars(struct pci_dev *d, int nbars)
{
	uint16_t cmd = pci_read16(d, 0x04);
	pci_write16(d, 0x04, cmd & ~3);
	for (int i = 0; i < nbars; i++) {
		uint16_t off = 0x10 + 4 * i;
		uint32_t orig = pci_read32(d, off);
		pci_write32(d, off, 0xffffffff);
		uint32_t mask = pci_read32(d, off);
		pci_write32(d, off, orig);
		if (!mask || mask == 0xffffffff)
			continue;
		if (orig & 1) {
			d->bar_is_io[i] = true;
			d->bar[i] = orig & ~3u;
			d->bar_size[i] = (~(mask & ~3u) + 1) & 0xffff;
			continue;
		}
		uint64_t base = orig & ~0xfu, m = mask & ~0xfu;
		if (((orig >> 1) & 3) == 2 && i < 5) {
			uint32_t orig_hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, 0xffffffff);
			uint32_t mask_hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, orig_hi);
			base |= (uint64_t)orig_hi << 32;
			m |= (uint64_t)mask_hi << 32;
			d->bar_is_64[i] = true;
			d->bar[i] = base;
			d->bar_size[i] = ~m + 1;
			i++;
			continue;
		}
		d->bar[i] = base;
		d->bar_size[i] = (uint32_t)(~(uint32_t)m + 1);
	}
	pci_write16(d, 0x04, cmd);
}

static void scan_bus(uint8_t bus, int depth);

static void scan_fn(uint8_t bus, uint8_t dev, uint8_t fn, int depth)
{
	uint32_t id = raw_read32(bus, dev, fn, 0);
	if ((id & 0xffff) == 0xffff || ndevs >= MAX_PCI)
		return;
	struct pci_dev *d = &devs[ndevs++];
	d->bus = bus;
	d->dev = dev;
	d->fn = fn;
	d->vendor = id & 0xffff;
	d->device = id >> 16;
	uint32_t cls = pci_read32(d, 0x08);
	d->rev = cls & 0xff;
	d->progif = (cls >> 8) & 0xff;
	d->subclass = (cls >> 16) & 0xff;
	d->class = cls >> 24;
	uint8_t htype = pci_read8(d, 0x0e) & 0x7f;
	if (htype == 0) {
		uint32_t ss = pci_read32(d, 0x2c);
		d->subsys_vendor = ss & 0xffff;
		d->subsys_id = ss >> 16;
		size_bars(d, 6);
	} else if (htype == 1) {
		size_bars(d, 2);
		uint8_t secondary = pci_read8(d, 0x19);
		if (secondary && secondary != bus && depth < 16)
			scan_bus(secondary, depth + 1);
	}
}

static void scan_bus(uint8_t bus, int depth)
{
	for (uint8_t dev = 0; dev < 32; dev++) {
		uint32_t id = raw_read32(bus, dev, 0, 0);
		if ((id & 0xffff) == 0xffff)
			continue;
		int multi = (raw_read32(bus, dev, 0, 0x0c) >> 16) & 0x80;
		for (uint8_t fn = 0; fn < (multi ? 8 : 1); fn++)
			scan_fn(bus, dev, fn, depth);
	}
}

void pci_scan(void)
{
	const struct acpi_info *a = acpi_get();
	if (a->ecam_base && a->ecam_bus_start == 0) {
		ecam = (volatile uint8_t *)(uintptr_t)a->ecam_base;
		ecam_bus_end = a->ecam_bus_end;
	}
	ndevs = 0;
	scan_bus(0, 0);
}

int pci_count(void)
{
	return ndevs;
}

struct pci_dev *pci_get(int i)
{
	return i >= 0 && i < ndevs ? &devs[i] : NULL;
}

void pci_bind_drivers(void)
{
	for (int i = 0; i < ndevs; i++) {
		for_each_table_entry(drv, pcidrv, const struct pci_driver) {
			if (devs[i].driver || !drv->match(&devs[i]))
				continue;
			int rc = drv->probe(&devs[i]);
			if (rc == 0)
				devs[i].driver = drv->name;
			else
				kprintf("pci %02x:%02x.%x: %s: %s\n", devs[i].bus, devs[i].dev, devs[i].fn,
					drv->name, err_str(rc));
		}
	}
}

static const char *class_name(const struct pci_dev *d)
{
	switch (d->class << 8 | d->subclass) {
	case 0x0100: return "SCSI";
	case 0x0101: return "IDE";
	case 0x0106: return "SATA";
	case 0x0108: return "NVMe";
	case 0x0180: return "storage";
	case 0x0200: return "ethernet";
	case 0x0300: return "VGA";
	case 0x0600: return "host bridge";
	case 0x0601: return "ISA bridge";
	case 0x0604: return "PCI bridge";
	case 0x0c05: return "SMBus";
	case 0x0c03: return "USB";
	}
	return d->class == 0x01 ? "storage" : "device";
}

static int cmd_pci(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return -E_USAGE;
	for (int i = 0; i < ndevs; i++) {
		struct pci_dev *d = &devs[i];
		kprintf("%02x:%02x.%x  %04x:%04x  %02x/%02x/%02x %-12s %s\n", d->bus, d->dev, d->fn,
			d->vendor, d->device, d->class, d->subclass, d->progif, class_name(d),
			d->driver ? d->driver : "-");
	}
	if (ecam)
		kprintf("%d devices (config space: ECAM at 0x%llx, buses 0-%u)\n", ndevs,
			(unsigned long long)(uintptr_t)ecam, ecam_bus_end);
	else
		kprintf("%d devices (config space: legacy ports 0xCF8/0xCFC)\n", ndevs);
	return 0;
}
COMMAND(pci, "pci", "PCI devices: address, vendor:device, class, driver bound", NULL, cmd_pci);
