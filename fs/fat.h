/* A FAT12/16/32 writer over a sector read/write callback: mounts a volume only after every BPB
 * field and the whole FAT have been checked, finds and creates directories and files with long
 * names, writes, overwrites and appends. A damaged volume is refused and never written. */
#ifndef COW_FAT_H
#define COW_FAT_H

#include "../lib/port.h"

/* The device holding the volume (a partition, or a whole "superfloppy" disk): 0 or a negative
 * code from cow/errors.h. Sectors are the device's own (lsize bytes). */
struct fat_dev {
	void *ctx;
	uint32_t lsize;
	uint64_t sectors;
	int (*read)(void *ctx, uint64_t lba, uint32_t count, void *buf);
	int (*write)(void *ctx, uint64_t lba, uint32_t count, const void *buf);   /* NULL: read-only */
	int (*flush)(void *ctx);
};

#define FAT_WORK_BYTES (128u * 1024)   /* the scratch buffer a mount needs */
#define FAT_NAME_MAX 255               /* UTF-16 units of a long name */

/* A directory: its first cluster, 0 for the fixed root of FAT12/16. */
struct fat_dir { uint32_t cluster; };

struct fat_vol {
	struct fat_dev dev;
	uint8_t *work;                  /* FAT_WORK_BYTES of the caller's */
	int type;                       /* 12, 16 or 32 */
	uint32_t bps;                   /* bytes per FAT sector */
	uint32_t spc;                   /* FAT sectors per cluster */
	uint32_t cbytes;                /* bytes per cluster */
	uint32_t dev_per_sec;           /* device sectors per FAT sector */
	uint32_t nfats, fat_sectors, active_fat;   /* active_fat: with mirroring off, the one used */
	bool mirror;
	uint64_t fat_start, root_start, data_start;   /* FAT sectors from the volume's start */
	uint32_t root_entries, root_sectors;          /* FAT12/16 fixed root */
	uint32_t root_cluster;                        /* FAT32 */
	uint32_t clusters;              /* data clusters: numbered 2 .. clusters + 1 */
	uint32_t free_count, next_free;
	uint32_t fsinfo_sector;         /* 0: none (or unusable) */
	uint8_t media;
	char label[12];
	/* Timestamps given to what is created or written (DOS date and time, 2 s units). */
	uint16_t now_date, now_time;
	/* A one-sector FAT cache, written to every FAT copy before anything that depends on it. */
	uint8_t fat_buf[4096];
	int64_t fat_cached;             /* FAT-relative sector, -1 none */
	bool fat_dirty;
	uint8_t sec[4096];              /* directory and partial-data sector */
	int64_t sec_lba;                /* the FAT sector it holds, -1 none */
	bool failed;                    /* a write failed: nothing more is written */
	bool changed;                   /* something was written since mount (FSInfo to update) */
	char why[160];                  /* a sentence on the last refusal */
};

/* Checks and mounts; `work` must hold FAT_WORK_BYTES. -E_FOREIGN: not a FAT boot sector;
 * -E_CORRUPT: inconsistent (vol->why says what); -E_UNSUPP: a FAT this code does not write
 * (sector size, version); read errors as returned. */
int fat_mount(struct fat_vol *v, const struct fat_dev *dev, uint8_t *work);
/* Writes the FAT cache, FSInfo (FAT32: the free count and next-free hint, only when its
 * signatures are intact) and flushes the device. */
int fat_sync(struct fat_vol *v);
/* Sets the timestamp of what is created or written from now on. */
void fat_set_time(struct fat_vol *v, int year, int month, int day, int hour, int minute, int second);

struct fat_dir fat_root(const struct fat_vol *v);

/* A directory entry found by name (long or 8.3, ASCII case ignored). */
struct fat_entry {
	uint8_t attr;
	uint32_t cluster, size;
	uint8_t short_name[11];
	uint64_t sector;                /* where its 8.3 entry lives (FAT sector) and offset */
	uint32_t offset;
};

/* Looks up one name in a directory: 0 and *e, -E_NOENT, -E_CORRUPT. */
int fat_lookup(struct fat_vol *v, struct fat_dir d, const char *name, struct fat_entry *e);
/* Finds or creates the directory `name` in d; *out is it. -E_EXIST when it is a file. */
int fat_mkdir(struct fat_vol *v, struct fat_dir d, const char *name, struct fat_dir *out);
/* Creates or overwrites (mode 'w') or appends to (mode 'a') the file `name` in d. The space
 * needed is checked first: -E_NOSPC (vol->why says how much) and nothing is written. */
int fat_write_file(struct fat_vol *v, struct fat_dir d, const char *name, const void *data,
		   uint32_t len, char mode);
/* Reads up to max bytes of a file into buf; *len gets its size (for tests and tools). */
int fat_read_file(struct fat_vol *v, struct fat_dir d, const char *name, void *buf, uint32_t max,
		  uint32_t *len);
/* Calls fn with each entry's long (else 8.3) name; stops on fn's non-zero return. */
int fat_list(struct fat_vol *v, struct fat_dir d,
	     int (*fn)(void *ctx, const char *name, const struct fat_entry *e), void *ctx);
/* 0 when the name can be a long file name (printable ASCII, no \/:*?"<>|, no trailing dot or
 * space, 1..255 bytes), else -E_INVAL. */
int fat_name_ok(const char *name);

#endif
