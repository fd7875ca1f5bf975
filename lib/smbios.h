/* SMBIOS (DMTF DSP0134) as the firmware hands it over: the entry point and, from the structure
 * table, the System Information structure's strings (who made the machine, its serial). */
#ifndef COW_SMBIOS_H
#define COW_SMBIOS_H

#include "port.h"

struct smbios_system {
	char manufacturer[64], product[64], serial[64];   /* printable ASCII, "" when unknown */
};

/* An entry point: "_SM3_" (24 bytes, SMBIOS 3) or "_SM_" (31 bytes, 2.x), checksummed. Gives
 * the structure table's physical address and length (bounded to 1 MiB). -E_NOENT: no anchor;
 * -E_CRC; -E_CORRUPT. */
int smbios_entry(const uint8_t *ep, size_t avail, uint64_t *addr, uint32_t *len);
/* The first System Information (type 1) structure of a table of len bytes: 0 and *out,
 * -E_NOENT when there is none, -E_CORRUPT when a structure runs past the table. Placeholder
 * strings ("To Be Filled By O.E.M.", "Default string", ...) count as unknown. */
int smbios_system(const uint8_t *table, size_t len, struct smbios_system *out);

#endif
