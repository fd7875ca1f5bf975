/* Partition tables over a read callback: GPT (primary, else the backup header at the disk's
 * last LBA; CRC-32 checked) and MBR (primary and logical partitions), to find NTFS volumes. */
#ifndef COW_PARTTAB_H
#define COW_PARTTAB_H

#include "port.h"
#include "ntfs.h"

struct part {
	uint64_t start, size;          /* bytes on the disk */
	unsigned index;                /* 1-based, as the table numbers it (logical from 5) */
	char scheme;                   /* 'g' GPT, 'm' MBR, 'r' no table: the whole disk */
	uint8_t mbr_type;              /* MBR type byte (0 for GPT) */
	uint8_t type_guid[16];         /* GPT type GUID as stored (zeros for MBR) */
	bool ntfs_type;                /* Microsoft basic data / MBR 0x07 */
	bool ntfs_sig;                 /* its first sector is an NTFS boot sector */
	bool gpt_backup;               /* the GPT came from the backup header */
};

/* Lists the partitions of a disk of disk_bytes (sector: its logical sector, 512 or 4096) into
 * out[max]; *n gets the count (partitions past max are left out). A disk without a table but
 * with an NTFS boot sector at 0 gives one 'r' entry. -E_CORRUPT when a table is damaged beyond
 * use (both GPT headers bad), -E_NOENT when there is no table at all; read errors as returned. */
int parttab_scan(ntfs_read_fn read, void *ctx, uint64_t disk_bytes, uint32_t sector, struct part *out,
		 unsigned max, unsigned *n);

#endif
