/* The cow engine: a crash-safe copy-on-write overlay of a read-only source disk, its
 * sector-precise rescue map, and the on-disk format of docs/cow-format.md. Freestanding. */
#ifndef COW_COW_H
#define COW_COW_H

#include "port.h"
#include "errors.h"

/* ---- interfaces in ------------------------------------------------------------------------ */

struct cow_identity {
	uint64_t size;              /* bytes */
	uint32_t lsz, psz;          /* logical / physical sector size */
	char model[41];             /* NUL-terminated, trailing blanks trimmed */
	char serial[21];
	uint8_t wwn[16];            /* WWN / EUI-64 / NGUID, wwn_len bytes of it */
	uint8_t wwn_len;
};

/* A synchronous block device. Offsets and lengths are bytes, multiples of identity.lsz.
 * Each op returns 0 or -E_MEDIUM/-E_IO/-E_TIMEOUT/-E_GONE/-E_RANGE/-E_RDONLY...; read sets
 * *bad_off (may be NULL) to the byte offset of the first failing sector on -E_MEDIUM. */
struct cow_bdev {
	struct cow_identity id;
	bool read_only;
	void *ctx;
	int (*read)(void *ctx, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off);
	int (*write)(void *ctx, uint64_t off, uint64_t len, const void *buf);
	int (*flush)(void *ctx);
};

enum cow_log_level { COW_LOG_ERR, COW_LOG_WARN, COW_LOG_INFO, COW_LOG_DEBUG };

struct cow_env {
	void *ctx;
	void *(*alloc)(void *ctx, size_t n);        /* NULL on failure; need not be zeroed */
	void (*free)(void *ctx, void *p);
	uint64_t (*now_us)(void *ctx);
	void (*log)(void *ctx, int level, const char *msg);     /* may be NULL */
	void (*random)(void *ctx, void *buf, size_t n);          /* for UUIDs */
};

/* ---- the map ------------------------------------------------------------------------------ */

/* Rescue states: the ddrescue mapfile characters. */
#define COW_NONTRIED   '?'
#define COW_NONTRIMMED '*'
#define COW_NONSCRAPED '/'
#define COW_BAD        '-'
#define COW_FINISHED   '+'

/* One extent, in source sectors (identity.lsz). `written` = written through the overlay.
 * A sector is present in the cow when state == '+' or written. */
struct cow_extent {
	uint64_t start, len;        /* sectors */
	char state;
	bool written;
};

/* Sorted, non-overlapping, merged extents; sectors not covered are ('?', not written). */
struct cow_map;

struct cow_map *cow_map_new(const struct cow_env *env, uint64_t nsectors, uint64_t max_extents);
void cow_map_free(struct cow_map *m);
/* The extent containing sector pos (a gap comes back as '?' spanning the whole gap).
 * -E_RANGE beyond the end. */
int cow_map_lookup(const struct cow_map *m, uint64_t pos, struct cow_extent *e);
/* Sets [pos, pos+len) to `state`, keeping each sector's written flag. -E_NOSPC when the map
 * would exceed max_extents, -E_RANGE, -E_INVAL for a bad state. */
int cow_map_set(struct cow_map *m, uint64_t pos, uint64_t len, char state);
/* Sets or clears the written flag on [pos, pos+len), keeping the states. */
int cow_map_set_written(struct cow_map *m, uint64_t pos, uint64_t len, bool written);
/* Calls fn for each extent covering [a, b) in order, gaps included as '?', clipped to [a, b).
 * A non-zero return from fn stops and is returned. */
typedef int (*cow_extent_fn)(void *ctx, const struct cow_extent *e);
int cow_map_iterate(const struct cow_map *m, uint64_t a, uint64_t b, cow_extent_fn fn, void *ctx);
struct cow_totals {
	uint64_t sectors[5];        /* by state, index of the state in COW_STATES */
	uint64_t areas[5];          /* number of extents per state (gaps count as '?') */
	uint64_t written;           /* sectors written through the overlay */
	uint64_t present;           /* sectors present in the cow */
};
#define COW_STATES "?*/-+"
void cow_map_totals(const struct cow_map *m, struct cow_totals *t);
uint64_t cow_map_count(const struct cow_map *m);        /* stored extents (gaps excluded) */
size_t cow_map_memory(const struct cow_map *m);         /* bytes allocated */
uint64_t cow_map_sectors(const struct cow_map *m);

/* ---- an open cow -------------------------------------------------------------------------- */

struct cow;

struct cow_format_opts {
	uint32_t unit;              /* 0 = 4096 */
	uint64_t max_extents;       /* checkpoint capacity; 0 = 1048576 */
	uint64_t journal_bytes;     /* 0 = 4 MiB (clamped to the cow's room) */
};

struct cow_stats {
	uint64_t source_reads, cow_reads, cow_writes;
	uint64_t units_present, bytes_rescued, bytes_bad;
	uint64_t commits, last_commit_us;
};

struct cow_info {
	uint8_t uuid[16];
	uint32_t version, unit;
	uint64_t seq;                       /* of the superblock in use */
	char sb_used;                       /* 'A' or 'B' */
	uint64_t data_offset, ckpt_offset[2], ckpt_bytes, journal_offset, journal_bytes;
	uint64_t max_extents, cow_size;
	struct cow_identity source;
	uint8_t sample_mask;                /* bit i: sample region i was readable at format */
	uint8_t sample_hash[4][32];         /* SHA-256 of first MiB, LBA 1, last LBA, last MiB */
};

/* Makes cowdev the cow of srcdev (writes superblocks, an empty checkpoint, a clean journal).
 * -E_TOOSMALL when the cow cannot hold metadata + the source. */
int cow_format(const struct cow_env *env, struct cow_bdev *cowdev, struct cow_bdev *srcdev,
	       const struct cow_format_opts *opts);

/* Opens a cow. srcdev may be NULL (tools that only read the cow: no identity check, overlay
 * reads of absent sectors fail with -E_GONE). On refusal returns -E_FOREIGN / -E_CRC /
 * -E_VERSION / -E_CORRUPT / -E_IDENTITY / -E_TOOSMALL and writes the reason (naming the field)
 * to why. */
int cow_open(const struct cow_env *env, struct cow_bdev *cowdev, struct cow_bdev *srcdev,
	     struct cow **out, char *why, size_t whylen);
/* Commit: flush the cow, append journal records (or a checkpoint), flush, superblock, flush. */
int cow_sync(struct cow *c);
/* Syncs (unless the cow is read-only) and frees. Returns the sync's result. */
int cow_close(struct cow *c);
/* Frees without syncing (after a device loss, or in tests to simulate a crash). */
void cow_abandon(struct cow *c);
void cow_stats(const struct cow *c, struct cow_stats *s);
void cow_info(const struct cow *c, struct cow_info *i);
/* The map, read-only (iterate it for the mapfile writer). Setting goes through the calls below. */
const struct cow_map *cow_get_map(const struct cow *c);
uint64_t cow_source_size(const struct cow *c);
uint32_t cow_sector_size(const struct cow *c);

/* Re-binds a (re-appeared) source after checking its identity; -E_IDENTITY with why naming the
 * differing field. NULL detaches the source. */
int cow_rebind_source(struct cow *c, struct cow_bdev *srcdev, char *why, size_t whylen);

/* ---- the overlay (byte offsets/lengths, multiples of the source's logical sector) ---------- */
int cow_ov_read(struct cow *c, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off);
int cow_ov_write(struct cow *c, uint64_t off, uint64_t len, const void *buf);
int cow_ov_flush(struct cow *c);        /* = cow_sync */

/* ---- for the rescue engine ----------------------------------------------------------------- */
/* Copy-on-read: reads [off, off+len) of the source into buf, stores it in the cow's data area
 * (except sectors already present, whose cow copy is kept and returned in buf) and marks the
 * range '+' in memory; it becomes durable at the next cow_sync. On a source error nothing is
 * marked; returns the error with *bad_off = first failing byte offset (or off if unknown). */
int cow_rescue_read(struct cow *c, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off);
/* Sets a range's state ('?', '*', '/', '-', '+'; byte offsets); recorded at the next commit.
 * Setting '+' on data not in the cow is refused with -E_INVAL (use cow_rescue_read). */
int cow_map_set_status(struct cow *c, uint64_t off, uint64_t len, char state);
/* Replaces the whole map (cowtool import-map): extents in bytes, sorted, non-overlapping;
 * uncovered = '?'. Written flags are cleared. The next cow_sync writes a checkpoint. The
 * caller copies the data of '+' ranges into the cow (cow_data_write) before syncing. */
int cow_map_replace(struct cow *c, const struct cow_extent *ext_bytes, size_t n);
/* Raw access to the data area (position-mapped), for import and export. */
int cow_data_read(struct cow *c, uint64_t off, uint64_t len, void *buf);
int cow_data_write(struct cow *c, uint64_t off, uint64_t len, const void *buf);

/* ---- checking ----------------------------------------------------------------------------- */
/* Verifies all metadata of cowdev without opening it; reports one text line per fact or finding
 * through fn. Returns the number of findings (0 = clean) or a negative error for I/O failure. */
typedef void (*cow_line_fn)(void *ctx, const char *line);
int cow_check(const struct cow_env *env, struct cow_bdev *cowdev, cow_line_fn fn, void *ctx);

/* ---- checksums (cow/crc32c.c, cow/sha256.c) ------------------------------------------------- */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);     /* 0 to start */
struct sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t fill;
};
void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *p, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[32]);

#endif
