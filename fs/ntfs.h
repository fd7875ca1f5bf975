/* A read-only NTFS reader over a read callback (the overlay in the appliance, a file on the
 * host): boot sector, MFT records, attributes, runlists, directory indexes, paths, domains. */
#ifndef COW_NTFS_H
#define COW_NTFS_H

#include "../lib/port.h"
#include "../cow/cow.h"

/* Reads len bytes at byte offset off of the disk: 0 or a negative code from lib/errors.h. */
typedef int (*ntfs_read_fn)(void *ctx, uint64_t off, uint32_t len, void *buf);
/* Receives a sentence about something damaged that was skipped (may be NULL). */
typedef void (*ntfs_say_fn)(void *ctx, const char *msg);

#define NTFS_SPARSE UINT64_MAX          /* lcn of a hole */
#define NTFS_ROOT 5                     /* MFT record of the root directory */
#define NTFS_NAME_MAX 1024              /* a UTF-8 file name (255 UTF-16 units) and its NUL */
#define NTFS_PATH_MAX 4096

struct ntfs_run {
	uint64_t vcn, lcn, len;         /* in clusters; lcn NTFS_SPARSE for a hole */
};

struct ntfs_vol {
	const struct cow_env *env;
	ntfs_read_fn read;
	void *ctx;
	ntfs_say_fn say;
	void *say_ctx;
	uint64_t base;                  /* byte offset of the volume on the disk */
	uint64_t limit;                 /* bytes of disk from base the volume may use (0: no limit) */
	uint32_t sector, cluster;       /* bytes */
	uint32_t rec_size, idx_size;    /* MFT record and index block bytes */
	uint64_t sectors;               /* volume sectors (the boot sector's count + the backup) */
	uint64_t clusters;
	uint64_t mft_lcn, mftmirr_lcn;
	uint64_t mft_records;           /* records the $MFT data holds */
	bool used_backup_boot;          /* the first boot sector was bad */
	struct ntfs_run *mft_runs;
	uint32_t mft_nruns;
	uint8_t *rec, *rec2;            /* record scratch buffers */
	uint8_t *win;                   /* a window of raw MFT records read together */
	uint64_t win_first, win_bad;    /* its first record; the first of a window that failed */
	uint64_t win_next;              /* the record after the last one read (in-order reads) */
	uint32_t win_n;
	uint16_t *upcase;               /* $UpCase, for case-insensitive names (NULL: ASCII) */
	struct ntfs_name_cache *cache;  /* directory names for path building */
	uint64_t damaged;               /* damaged structures met and skipped */
};

/* The bytes at base as an NTFS volume (the reader keeps a 64 KiB window of MFT records, so
 * reopen it after writing the disk) (the backup boot sector at the volume's end, found from
 * limit, is tried when the first is bad). -E_FOREIGN: not NTFS; -E_CORRUPT; read errors. */
int ntfs_open(struct ntfs_vol *v, const struct cow_env *env, ntfs_read_fn read, void *ctx,
	      uint64_t base, uint64_t limit);
void ntfs_close(struct ntfs_vol *v);
/* 1 when the 512 bytes look like an NTFS boot sector ("NTFS    " and a sane geometry). */
int ntfs_probe(const uint8_t *boot);

/* One MFT record, fixed up, into buf (v->rec_size bytes). -E_CORRUPT bad magic or fixups. */
int ntfs_read_record(struct ntfs_vol *v, uint64_t recno, uint8_t *buf);

/* What a file is (from its base record; sizes of the unnamed $DATA). */
struct ntfs_stat {
	uint64_t mft;
	uint64_t size, alloc;
	uint64_t ctime, mtime, atime;   /* NTFS time: 100 ns since 1601-01-01 UTC */
	bool dir;
	bool resident;                  /* the data lives inside the MFT record */
	uint32_t attr_flags;            /* compressed 0x1, encrypted 0x4000, sparse 0x8000 */
};
int ntfs_stat(struct ntfs_vol *v, uint64_t recno, struct ntfs_stat *st);

/* The runs of an attribute (type 0x80 $DATA, 0xA0 $INDEX_ALLOCATION...; name NULL: unnamed)
 * across its attribute list, sorted by vcn and checked against the volume (-E_RANGE when a run
 * points past it). *runs is allocated from the env (free with env->free); a resident attribute
 * gives 0 runs. *size gets the data size. -E_NOENT when the attribute is absent. */
int ntfs_attr_runs(struct ntfs_vol *v, uint64_t recno, uint32_t type, const char *name,
		   struct ntfs_run **runs, uint32_t *nruns, uint64_t *size);
/* Reads a file's unnamed $DATA (resident or not; holes and past-initialized read as zeros).
 * Compressed or encrypted non-resident data is -E_UNSUPP (its runs are still in the walk). */
int ntfs_file_read(struct ntfs_vol *v, uint64_t recno, uint64_t off, uint32_t len, void *buf);

struct ntfs_dirent {
	char name[NTFS_NAME_MAX];       /* UTF-8 */
	struct ntfs_stat st;
};
/* Calls fn for each entry of a directory (Win32/POSIX names; DOS-only names skipped); fn
 * returns 0 to go on, anything else stops the walk and is returned. Damaged index blocks are
 * said and skipped, and the entries they held are then found in the MFT (one pass). */
int ntfs_dir_list(struct ntfs_vol *v, uint64_t dir, int (*fn)(void *ctx, const struct ntfs_dirent *e),
		  void *ctx);
/* The record of a path ("/a/b", '\\' also separates), names compared case-insensitively
 * (through the volume's $UpCase table, as Windows does). */
int ntfs_lookup(struct ntfs_vol *v, const char *path, uint64_t *recno);
/* The path of a record from its parents ("/" for the root); -E_CORRUPT for a loop. */
int ntfs_path(struct ntfs_vol *v, uint64_t recno, char *buf, size_t len);

/* Glob of one or more path components: '*' and '?' within a component, case-insensitive (ASCII
 * here; ntfs_walk and ntfs_domain fold through the volume's $UpCase). A pattern with a '/'
 * matches the whole path, one without matches the file name. */
int ntfs_glob_match(const char *pattern, const char *path);

/* A file met by ntfs_walk: its path, stat, and the runs of its unnamed $DATA. */
struct ntfs_file {
	const char *path;
	struct ntfs_stat st;
	const struct ntfs_run *runs;
	uint32_t nruns;
};
/* Every in-use base record that is a file (not a directory), in MFT order, whose path matches
 * glob (NULL: all). A damaged record is said and skipped. fn returns 0 to go on. */
int ntfs_walk(struct ntfs_vol *v, const char *glob, int (*fn)(void *ctx, const struct ntfs_file *f),
	      void *ctx);

/* Every in-use directory, in MFT order, with the runs of its index allocation (none for a
 * directory whose index fits its record): what ntfind-bad checks for listings at risk. */
int ntfs_walk_dirs(struct ntfs_vol *v, int (*fn)(void *ctx, const struct ntfs_file *f), void *ctx);

/* Priority groups of the domain. */
enum ntfs_group {
	NTFS_G_BOOT = 0,                /* both boot sectors */
	NTFS_G_MFT = 1,                 /* $MFT (and its bitmap), $MFTMirr */
	NTFS_G_INDEX = 2,               /* directory indexes, non-resident attribute lists */
	NTFS_G_DATA = 3,                /* file data (of the matching files with a glob) */
	NTFS_G_USED = 4,                /* the rest of $Bitmap's used clusters (no glob only) */
	NTFS_G_COUNT
};
/* Byte ranges on the disk (base included) to rescue, group by group, in group order; the same
 * range may come again in a later group. emit returns 0 to go on. */
typedef int (*ntfs_emit_fn)(void *ctx, int group, uint64_t off, uint64_t len);
int ntfs_domain(struct ntfs_vol *v, const char *glob, ntfs_emit_fn emit, void *ctx);
/* The used clusters from $Bitmap as byte ranges (group NTFS_G_USED). */
int ntfs_used(struct ntfs_vol *v, ntfs_emit_fn emit, void *ctx);

#endif
