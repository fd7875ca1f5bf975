/* The cow engine: a crash-safe overlay of a read-only source disk (docs/cow-format.md). Pure C
 * behind three small interfaces: block devices, an environment (allocator, clock, random), and
 * the caller's choice of when to commit. Several cows may be open at once. */
#ifndef COW_COW_H
#define COW_COW_H

#include "../lib/port.h"

/* ---- interfaces in ---------------------------------------------------------------------- */

/* One request to a block device. The submitter fills op, off, len and buf; the device keeps
 * its own state in priv (the image keeps its block-layer request there), so a request costs no
 * allocation. The buffer belongs to the device from submit until wait returns. */
enum cow_io_op { COW_IO_READ, COW_IO_WRITE, COW_IO_FLUSH };
#define COW_IO_PRIV 192
struct cow_io {
	uint8_t op;
	uint32_t len;
	uint64_t off;
	void *buf;
	int status;                    /* set by the device when the request ends */
	uint64_t bad_off;              /* a failed read's first bad byte when known, else off */
	_Alignas(16) unsigned char priv[COW_IO_PRIV];
};

/* A block device. Offsets and lengths are bytes, multiples of lsize. Asynchronous: submit
 * starts a request and returns at once (a device may end it before returning); wait returns
 * once it has ended, with 0 or a negative code (-E_MEDIUM, -E_TIMEOUT, -E_GONE...), letting
 * other work run meanwhile. Requests end in any order; a flush covers the writes that ended
 * before it was submitted. Every submitted request must be waited for. */
struct cow_bdev {
	void *ctx;
	uint64_t size;                 /* bytes */
	uint32_t lsize, psize;
	char model[48], serial[32];
	uint8_t wwn[16], wwn_len;
	void (*submit)(void *ctx, struct cow_io *io);
	int (*wait)(void *ctx, struct cow_io *io);
};

/* One request, submitted and waited for (cow/bdev.c). */
int cow_bdev_read(const struct cow_bdev *d, uint64_t off, uint32_t len, void *buf, uint64_t *bad_off);
int cow_bdev_write(const struct cow_bdev *d, uint64_t off, uint32_t len, const void *buf);
int cow_bdev_flush(const struct cow_bdev *d);

/* Up to COW_BATCH requests in flight at once, on one device or several: the pieces of one
 * overlay read or write, a checkpoint's megabytes. After the first failure (in submission
 * order) nothing more is submitted; cow_batch_wait always waits for everything in flight. */
#define COW_BATCH 8
struct cow_batch {
	const struct cow_bdev *dev[COW_BATCH];
	struct cow_io io[COW_BATCH];
	uint32_t n;
	int status;
	uint64_t bad_off;
	const struct cow_bdev *failed;   /* the device of the first failure */
};
void cow_batch_init(struct cow_batch *b);
void cow_batch_add(struct cow_batch *b, const struct cow_bdev *d, uint8_t op, uint64_t off, uint32_t len,
		   const void *buf);
/* 0, or the first failure's code with *bad_off (may be NULL) set for a read error. */
int cow_batch_wait(struct cow_batch *b, uint64_t *bad_off);

struct cow_env {
	void *(*alloc)(size_t n);      /* NULL when out of memory; need not zero */
	void (*free)(void *p);
	uint64_t (*now_us)(void);
	void (*random)(void *buf, size_t n);
};

/* ---- the map ------------------------------------------------------------------------------ */

/* Rescue states, as ddrescue writes them. */
#define COW_NONTRIED  '?'
#define COW_NONTRIMMED '*'
#define COW_NONSCRAPED '/'
#define COW_BAD       '-'
#define COW_FINISHED  '+'

/* An extent of source sectors with one state; `written`: the overlay wrote these sectors, so
 * the cow holds the only valid copy and a rescue must not overwrite it. */
struct cow_extent {
	uint64_t start, count;         /* in source logical sectors */
	uint8_t state, written;
};

/* Chunks of extents in sector order (cow/map.c), each a 4 KiB page of packed extents grouped
 * under index pages (cow/mappage.h); read it through the functions below. */
struct cow_map_chunk;
struct cow_map_index;
struct cow_map {
	struct cow_map_chunk **chunk;  /* nchunks of them, none empty */
	uint64_t *first;               /* each chunk's first sector: what lookups search */
	uint32_t *size;                /* each chunk's size as the Fenwick tree `fen` counts it */
	uint64_t *fen;                 /* chunk sizes summed, for extent indexes */
	uint64_t nchunks, cap;         /* cap: entries in the four arrays */
	struct cow_map_chunk *spare[2];/* allocated ahead: an update never fails half done */
	uint64_t hint;                 /* the chunk used last: walks and nearby lookups skip the search */
	uint64_t n, max;               /* extents; max: the most the cow's metadata holds */
	uint64_t next_commit;          /* the commit whose log takes the changes made now (cow/mappage.h) */
	uint64_t sectors;
	const struct cow_env *env;
	struct cow_map_index *idx;     /* the chunks' groups and what changed since the last commit */
	/* Extents are stored packed; the functions below hand out decoded copies from this ring. */
	struct cow_extent view[8];
	uint64_t view_k[8], view_chg[8];
	uint32_t view_i[8], view_next;
};

int cow_map_init(struct cow_map *m, const struct cow_env *env, uint64_t sectors, uint64_t max);
void cow_map_free(struct cow_map *m);
/* Index of the extent holding `sector` (sector < m->sectors). */
uint64_t cow_map_lookup(const struct cow_map *m, uint64_t sector);
/* Extents by position, valid until the next change to the map (and for the next seven calls
 * that return one; the same extent asked for twice is the same pointer): the one holding `sector`
 * (sector < m->sectors); the i-th in sector order (NULL from i == m->n); the one after x (NULL
 * after the last). Walk: for (x = cow_map_get(m, 0); x; x = cow_map_next(m, x)). */
const struct cow_extent *cow_map_at(const struct cow_map *m, uint64_t sector);
const struct cow_extent *cow_map_get(const struct cow_map *m, uint64_t i);
const struct cow_extent *cow_map_next(const struct cow_map *m, const struct cow_extent *x);
/* Replaces the whole map by n extents, get(ctx, i, &e) giving the i-th: they must tile the
 * source in order with valid states (-E_CORRUPT) and n <= max (-E_NOSPC); equal neighbours are
 * merged. On failure the map is unchanged. */
int cow_map_load(struct cow_map *m, uint64_t n, void (*get)(void *ctx, uint64_t i, struct cow_extent *e),
		 void *ctx);
/* Heap bytes the map holds. */
uint64_t cow_map_bytes(const struct cow_map *m);
/* Sets [start, start+count) to `state` (0 keeps each extent's state) and `written` (-1 keeps
 * it); splits and merges extents. -E_NOSPC, changing nothing, when splitting the extents at
 * its ends could take the map past its maximum (an update that splits none always works). */
int cow_map_set(struct cow_map *m, uint64_t start, uint64_t count, uint8_t state, int written);
struct cow_totals { uint64_t sectors[5], areas[5], written; };
void cow_map_totals(const struct cow_map *m, struct cow_totals *t);
int cow_state_index(uint8_t state);   /* '?' 0, '*' 1, '/' 2, '-' 3, '+' 4, -1 otherwise */

/* ---- an open cow -------------------------------------------------------------------------- */

/* bytes_rescued and bytes_bad count sectors as they enter the state (a re-read counts once);
 * units_present is counted from the map when asked (a walk of it). */
struct cow_counters {
	uint64_t source_reads, cow_reads, cow_writes, bytes_rescued, bytes_bad, commits, last_commit_us;
	uint64_t units_present;
};

struct cow;

/* Makes `cowdev` the cow of `src`: refuses (-E_TOOSMALL) a cow smaller than the source plus
 * metadata, a unit that is not a power of two at least the source sector, and a source whose
 * logical sector the cow device cannot address. why: a sentence for the user. */
int cow_format(const struct cow_env *env, const struct cow_bdev *cowdev, const struct cow_bdev *src,
	       uint32_t unit, char *why, size_t whylen);
/* Bytes before the data area that cow_format lays out for a source of src_size bytes: a cow
 * must hold this plus the source. */
uint64_t cow_metadata_bytes(uint64_t src_size);
/* The same in a given format version: 2 (what cow_format writes) or 1, the checkpoint-and-journal
 * format, kept to test that old cows still open and upgrade. */
int cow_format_version(const struct cow_env *env, const struct cow_bdev *cowdev, const struct cow_bdev *src,
		       uint32_t unit, uint32_t version, char *why, size_t whylen);
/* Opens a cow. With src, its identity must match (the differing field is named in why, and
 * -E_IDENTITY returned); without src, only host tools' metadata work is possible. */
int cow_open(const struct cow_env *env, const struct cow_bdev *cowdev, const struct cow_bdev *src,
	     struct cow **out, char *why, size_t whylen);
/* Commits: data flush, journal records, flush, superblock, flush. */
int cow_sync(struct cow *c);
/* Commits and frees. */
int cow_close(struct cow *c);
/* Rewrites a version-1 cow's map as version 2 in its own metadata area (crash-safe: the new
 * pages go where the version-1 state does not lie, and one superblock write switches). 0 when
 * upgraded, 1 when it already was version 2, -E_NOSPC when its map is too large for the area. */
int cow_upgrade(const struct cow_env *env, const struct cow_bdev *cowdev, char *why, size_t whylen);
/* Frees without committing (read-only inspection, or a device that is gone). */
void cow_discard(struct cow *c);
/* For `cowtool check`: looks at each superblock, checkpoint slot and the journal on its own and
 * says, a line at a time, what each holds and what can be salvaged. 0 when the cow opens from
 * its newest superblock, 1 when it opens only from an older state or not at all, or -E_NOMEM. */
int cow_inspect(const struct cow_env *env, const struct cow_bdev *cowdev,
		void (*say)(void *ctx, const char *line), void *ctx);

/* The overlay: reads take the cow's copy where the map has one, the source elsewhere; writes go
 * to the cow and are recorded as present only by the next commit. Byte offsets and lengths are
 * multiples of the source's logical sector. */
int cow_ov_read(struct cow *c, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off);
int cow_ov_write(struct cow *c, uint64_t off, uint64_t len, const void *buf);
/* Records as written, without writing data, the sectors of a range whose cow copy is the
 * source's ('+', not written): that copy is already their right content. Durable at the next
 * commit; a cow_ov_write there after it needs no commit of its own, so a caller with several
 * writes at once (the nbdkit plugin) claims them all and commits once. Until that commit, no
 * data may be written over the claimed sectors. Returns the sectors newly claimed, or a
 * negative code (-E_ALIGN, -E_RANGE, -E_NOSPC). */
int64_t cow_ov_claim(struct cow *c, uint64_t off, uint64_t len);
/* An overlay read that also stores what it had to take from the source, as finished: how file
 * system metadata is read (every sector it touches is rescued on the way). A store failure is
 * -E_COWIO or -E_NOSPC, after buf was filled. */
int cow_ov_read_rescuing(struct cow *c, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off);

/* Copy-on-read for the rescue: reads the source, writes what it got to the cow (never over
 * sectors the overlay wrote) and marks the range finished, durable at the next commit. On a read
 * error nothing is recorded and *bad_off names the failing byte when the device did; a failure
 * to store is -E_COWIO (or -E_NOSPC when the map is full), never a source error. */
int cow_rescue_read(struct cow *c, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off);
/* Its first half: one source read (counted), nothing stored. */
int cow_read_source(struct cow *c, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off);
/* Its second half, in two steps so that the next source read runs while the cow writes this
 * block: begin submits the writes (buf stays the device's until the store ends); end waits for
 * them and only then marks the range finished, with -E_COWIO or -E_NOSPC as above. One store is
 * in flight per cow; every other call on the cow but cow_read_source ends it first, and
 * cow_store_end ends it explicitly (0 when none is in flight). */
int cow_store_begin(struct cow *c, uint64_t off, uint64_t len, const void *buf);
int cow_store_end(struct cow *c);
/* Both steps at once: also for data rescued elsewhere (an imported ddrescue image). */
int cow_store_rescued(struct cow *c, uint64_t off, uint64_t len, const void *buf);
/* Sets the rescue state of a range ('?', '*', '/', '-'; '+' only through cow_rescue_read). */
int cow_set_state(struct cow *c, uint64_t off, uint64_t len, uint8_t state);

/* Before re-binding the source after a hot-swap (the caller re-points the bdev the cow was
 * opened with): `src` must have the recorded identity (-E_IDENTITY, the differing field in
 * why) and read at least one of the sampled regions (-E_AGAIN). */
int cow_check_source(struct cow *c, const struct cow_bdev *src, char *why, size_t whylen);
const struct cow_map *cow_get_map(const struct cow *c);
void cow_get_counters(const struct cow *c, struct cow_counters *out);
/* Version 1 has checkpoints and a journal; version 2 a page area (the others are 0). */
struct cow_geometry {
	uint64_t source_size, data_offset, journal_offset, journal_bytes, checkpoint_bytes, max_extents;
	uint64_t page_offset, page_slots, pages_free;
	uint32_t unit, src_lsize, src_psize, version;
	uint8_t uuid[16];
	char model[48], serial[32];
	uint64_t sb_seq;
};
void cow_get_geometry(const struct cow *c, struct cow_geometry *g);

#endif
