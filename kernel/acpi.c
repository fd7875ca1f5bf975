/* ACPI at boot: the firmware's tables are reached through physical memory (identity-mapped)
 * and parsed by lib/acpi_parse.c, which checks everything before use; here only the
 * question of which addresses are memory at all, and the few facts the kernel keeps. */
#include "acpi.h"
#include "../lib/acpi_parse.h"
#include "log.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"

/* Legacy BIOS area: firmware may put the RSDP and tables there without listing it. */
#define BIOS_AREA_START 0xE0000ull
#define BIOS_AREA_END   0x100000ull

static struct acpi_info info;

/* Inside ranges of the UEFI memory map (any type: the tables sit in ACPI reclaim/NVS, some
 * firmware puts them in reserved memory), contiguous ranges joined. A pointer into a hole
 * could be MMIO, where a read is not harmless. */
static const void *map_phys(void *ctx, uint64_t addr, uint32_t len)
{
	(void)ctx;
	uint64_t end = addr + len;
	if (end < addr)
		return NULL;
	if (addr >= BIOS_AREA_START && end <= BIOS_AREA_END)
		return (const void *)(uintptr_t)addr;
	const struct boot_info *bi = boot_info_get();
	uint64_t at = addr;
	while (at < end) {
		uint32_t i;
		for (i = 0; i < bi->mem_count; i++) {
			const struct boot_mem_range *r = &bi->mem[i];
			if (at >= r->base && at - r->base < r->pages * 4096ull) {
				at = r->base + r->pages * 4096ull;
				break;
			}
		}
		if (i == bi->mem_count)
			return NULL;
	}
	return (const void *)(uintptr_t)addr;
}

static void note(void *ctx, const char *msg)
{
	(void)ctx;
	log_event(LOG_WARN, "acpi: %s", msg);
}

void acpi_init(void)
{
	struct acpi_mem m = { map_phys, NULL, note };
	struct acpi_facts f;
	acpi_parse(&m, boot_info_get()->rsdp, &f);
	info.ecam_base = f.ecam_base;
	info.ecam_bus_start = f.ecam_bus_start;
	info.ecam_bus_end = f.ecam_bus_end;
	info.pm_timer_port = f.pm_timer_port;
	info.tables = f.tables;
}

const struct acpi_info *acpi_get(void)
{
	return &info;
}
