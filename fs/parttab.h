/* Partition tables over a read callback: GPT (primary, else the backup header at the disk's
 * last LBA; CRC-32 checked) and MBR (primary and logical partitions). The one parser of
 * tables: the appliance's child disks, its NTFS commands and the host tools all use it. */
#ifndef COW_PARTTAB_H
#define COW_PARTTAB_H

#include "../lib/port.h"
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
	bool cow_type;                 /* GPT type "cowboot cow" (docs/cow-format.md) */
};

/* A range of the disk that holds a table itself (MBR, EBRs, GPT headers and entry arrays):
 * what a rescue reads first, because every partition is found through it. */
struct parttab_area {
	uint64_t start, size;          /* bytes */
};

#define PARTTAB_MAX_AREAS 16
#define PARTTAB_MAX_SAID  8        /* entry complaints said one by one; the rest are counted */

typedef void (*parttab_say_fn)(void *ctx, const char *msg);

/* What a scan found. The caller sets say/say_ctx (may be NULL) before the scan; every table,
 * header or entry that fails its checks is said there once, in words, and left out. */
struct parttab {
	parttab_say_fn say;
	void *say_ctx;
	char scheme;                   /* 'g', 'm', 'r' (a volume on the whole disk), 0 none */
	bool gpt_backup;               /* the primary GPT failed and the backup was used */
	bool hybrid;                   /* an MBR with partitions beside its protective entry */
	unsigned n;                    /* partitions in out[] */
	unsigned found;                /* partitions found (more than n when out[] was full) */
	unsigned ignored;              /* entries left out as invalid */
	struct parttab_area area[PARTTAB_MAX_AREAS];
	unsigned nareas;
};

/* The GPT's area at each end of a disk when its headers cannot tell (the usual 128 entries of
 * 128 bytes): head = protective MBR + header + array, tail = array + backup header. */
uint64_t parttab_gpt_head_bytes(uint32_t sector);
uint64_t parttab_gpt_tail_bytes(uint32_t sector);

/* Lists the partitions of a disk of disk_bytes (sector: its logical sector, 512 or 4096) into
 * out[max] and describes the table in *t; a disk without a table but with an NTFS boot sector
 * at 0 gives one 'r' entry. Returns 0 with a table, -E_NOENT when there is none, -E_CORRUPT
 * when there is one but it was ignored as a whole (said why); read errors of sector 0 and
 * -E_NOMEM as returned. t->area[] is filled in every case but a read error. */
int parttab_scan(ntfs_read_fn read, void *ctx, uint64_t disk_bytes, uint32_t sector, struct part *out,
		 unsigned max, struct parttab *t);

#endif
