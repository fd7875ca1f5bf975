/* The cow partition: superblocks A/B, the map as copy-on-write pages under a log of changes
 * (version 3; version 2 without the log, version 1 checkpoints plus a journal), and the
 * position-mapped data area (docs/cow-format.md). The map in memory is the current view; a
 * commit writes what changed only after the data it describes has been flushed: the map on disk
 * never runs ahead of the data. */
#include "cow.h"
#include "../lib/crc32c.h"
#include "../lib/errors.h"
#include "mappage.h"
#include "../lib/sha256.h"

#define COW_VERSION   3          /* what cow_format writes: the paged map with a log of changes */
#define COW_V2        2          /* the paged map without a log: still opened and committed */
#define COW_V1        1          /* checkpoints plus a journal: still opened and committed */
#define META_BLOCK    4096u
#define SB_SIZE       512u
#define CKPT_HDR      64u
#define CKPT_REC      24u
#define JREC          64u
#define JOURNAL_BYTES (256u * 1024)
#define SAMPLE_BYTES  (1024u * 1024)
#define PENDING_MAX   4096u

static const char SB_MAGIC[8] = "COWBOOT";      /* with its NUL: 8 bytes */
static const char CK_MAGIC[8] = "COWCKPT";
#define J_MAGIC 0x4e524a43u                      /* "CJRN" */

struct __attribute__((packed)) superblock {
	char magic[8];
	uint32_t version, sb_size;
	uint8_t uuid[16];
	uint64_t self_off, seq;
	uint32_t unit, src_lsize, src_psize, cow_lsize;
	uint64_t src_size;
	/* Version 1 and version 2 name these differently (docs/cow-format.md). */
	union {
		struct __attribute__((packed)) { uint64_t ckpt_off[2], ckpt_bytes; };
		struct __attribute__((packed)) { uint64_t page_off, page_slots, root_slot; };
	};
	uint64_t max_extents;
	union {
		struct __attribute__((packed)) { uint64_t journal_off, journal_bytes, journal_epoch; };
		struct __attribute__((packed)) { uint64_t root_crc, map_extents, map_pages; };
	};
	uint32_t active_ckpt, sampled;
	uint64_t data_off;
	uint64_t ctr[7];
	char model[48], serial[32];
	uint8_t wwn[16], wwn_len, pad[7];
	uint8_t hash_first[32], hash_last[32];
	/* Version 3: the log's index page (slot, CRC; SLOT_NONE: no log), its records, and the
	 * sector the sweep of changed pages goes on from. */
	uint32_t log_slot, log_crc;
	uint64_t log_recs, sweep;
};
_Static_assert(sizeof(struct superblock) <= SB_SIZE - 4, "superblock fits one sector with its CRC");

struct __attribute__((packed)) ckpt_header {
	char magic[8];
	uint64_t epoch, n, sectors;
	uint32_t data_crc, hdr_crc;
	uint8_t pad[CKPT_HDR - 40];
};

struct __attribute__((packed)) ckpt_rec { uint64_t start, count; uint8_t state, written, pad[6]; };

struct __attribute__((packed)) jrec {
	uint32_t magic, crc;
	uint64_t epoch, index, start, count;
	uint8_t state;
	int8_t written;
	uint8_t pad[JREC - 42];
};

struct cow {
	const struct cow_env *env;
	const struct cow_bdev *dev, *src;
	struct superblock sb;
	struct cow_map map;
	struct jrec *pending;
	uint32_t npending;
	uint64_t jnext;          /* records in the journal of this epoch */
	uint64_t jblocks;        /* journal blocks used in this epoch (a commit starts a new one) */
	bool fresh_epoch;        /* the next commit checkpoints: no stale record can follow ours */
	uint32_t lsize;          /* the source's logical sector: the map's unit */
	uint8_t *iobuf;          /* one metadata block */
	/* Version 2: the page slots referenced by the newest or the other superblock's map (or
	 * written by the commit under way) are busy; slots dropped by the last commit stay busy
	 * until the next one is durable, because the other superblock still names them. */
	uint64_t *busy;
	uint64_t nfree, cursor;
	uint32_t *freed_prev;
	uint64_t nfreed_prev, freed_prev_cap;
	/* Version 3: the log on disk, page by page in order (slot, CRC, the commit that wrote it),
	 * its last page's contents, and the map changes made since the last commit. */
	uint32_t *log_slot, *log_crc;
	uint64_t *log_gen;
	uint32_t log_n;
	struct map_log_page *log_tail;
	struct map_log_rec *ops;
	uint64_t nops, capops;
	bool ops_lost;           /* too many for the log: the next commit writes every changed page */
	struct cow_batch store;  /* copy-on-read writes in flight (cow_store_begin) */
	uint64_t store_off, store_len;
	bool storing;
};

/* ---- helpers -------------------------------------------------------------------------------- */

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static void set_why(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t n, const char *fmt, ...)
{
	if (!why || !n)
		return;
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(why, n, fmt, ap);
	va_end(ap);
}

static void sb_seal(struct superblock *sb, uint8_t *block)
{
	memset(block, 0, META_BLOCK);
	memcpy(block, sb, sizeof(*sb));
	uint32_t crc = crc32c(0, block, SB_SIZE - 4);
	memcpy(block + SB_SIZE - 4, &crc, 4);
}

static int sb_valid(const uint8_t *block, struct superblock *sb)
{
	uint32_t crc;
	memcpy(&crc, block + SB_SIZE - 4, 4);
	memcpy(sb, block, sizeof(*sb));
	if (memcmp(sb->magic, SB_MAGIC, 8))
		return -E_FOREIGN;
	if (crc32c(0, block, SB_SIZE - 4) != crc)
		return -E_CRC;
	if (sb->version != COW_VERSION && sb->version != COW_V2 && sb->version != COW_V1)
		return -E_VERSION;
	return 0;
}

/* Hashes what can be read of [off, off+len) of the source; 0 when all of it was read. */
static int sample_hash(const struct cow_env *env, const struct cow_bdev *src, uint64_t off,
		       uint64_t len, uint8_t out[32])
{
	uint8_t *buf = env->alloc(64 * 1024);
	if (!buf)
		return -E_NOMEM;
	struct sha256 s;
	sha256_init(&s);
	int rc = 0;
	for (uint64_t p = off; p < off + len && rc == 0; p += 64 * 1024) {
		uint32_t n = off + len - p < 64 * 1024 ? (uint32_t)(off + len - p) : 64 * 1024;
		uint64_t bad;
		rc = cow_bdev_read(src, p, n, buf, &bad);
		sha256_update(&s, buf, n);
	}
	sha256_final(&s, out);
	env->free(buf);
	return rc;
}

/* The source's identity, sampled regions included (a region that could not be read is
 * recorded as such and never compared). */
static int read_identity(const struct cow_env *env, const struct cow_bdev *src, struct superblock *sb)
{
	uint64_t len = src->size < SAMPLE_BYTES ? src->size : SAMPLE_BYTES;
	sb->src_size = src->size;
	sb->src_lsize = src->lsize;
	sb->src_psize = src->psize;
	memcpy(sb->model, src->model, sizeof(sb->model));
	memcpy(sb->serial, src->serial, sizeof(sb->serial));
	memcpy(sb->wwn, src->wwn, sizeof(sb->wwn));
	sb->wwn_len = src->wwn_len;
	sb->sampled = 0;
	int rc = sample_hash(env, src, 0, len, sb->hash_first);
	if (rc == -E_NOMEM)
		return rc;
	if (rc == 0)
		sb->sampled |= 1;
	rc = sample_hash(env, src, src->size - len, len, sb->hash_last);
	if (rc == -E_NOMEM)
		return rc;
	if (rc == 0)
		sb->sampled |= 2;
	return 0;
}

static int identity_differs(const struct superblock *a, const struct superblock *b, char *why, size_t n)
{
	if (a->src_size != b->src_size)
		set_why(why, n, "source size differs: the cow was made for %llu bytes, this disk has %llu",
			(unsigned long long)a->src_size, (unsigned long long)b->src_size);
	else if (a->src_lsize != b->src_lsize || a->src_psize != b->src_psize)
		set_why(why, n, "source sector size differs: the cow has %u/%u, this disk %u/%u",
			a->src_lsize, a->src_psize, b->src_lsize, b->src_psize);
	/* Model, serial and WWN are compared when both sides know them: an image file of the disk
	 * on the host has none, and is then judged by size, sector size and contents. */
	else if (a->model[0] && b->model[0] && strncmp(a->model, b->model, sizeof(a->model)))
		set_why(why, n, "source model differs: the cow has '%.48s', this disk '%.48s'", a->model, b->model);
	else if (a->serial[0] && b->serial[0] && strncmp(a->serial, b->serial, sizeof(a->serial)))
		set_why(why, n, "source serial differs: the cow has '%.32s', this disk '%.32s'", a->serial, b->serial);
	else if (a->wwn_len && b->wwn_len && (a->wwn_len != b->wwn_len || memcmp(a->wwn, b->wwn, a->wwn_len)))
		set_why(why, n, "source WWN/EUI-64 differs");
	else if ((a->sampled & b->sampled & 1) && memcmp(a->hash_first, b->hash_first, 32))
		set_why(why, n, "source contents differ: the hash of its first MiB is not the recorded one");
	else if ((a->sampled & b->sampled & 2) && memcmp(a->hash_last, b->hash_last, 32))
		set_why(why, n, "source contents differ: the hash of its last MiB is not the recorded one");
	else
		return 0;
	return -E_IDENTITY;
}

/* ---- checkpoints ------------------------------------------------------------------------- */

static int ckpt_write(struct cow *c, uint32_t slot, uint64_t epoch)
{
	const struct cow_map *m = &c->map;
	uint64_t bytes = CKPT_HDR + m->n * CKPT_REC;
	if (bytes > c->sb.ckpt_bytes)
		return -E_NOSPC;
	uint64_t total = align_up(bytes, META_BLOCK);
	uint8_t *buf = c->env->alloc(total);
	if (!buf)
		return -E_NOMEM;
	memset(buf, 0, total);
	struct ckpt_rec *r = (struct ckpt_rec *)(buf + CKPT_HDR);
	uint64_t i = 0;
	for (const struct cow_extent *x = cow_map_get(m, 0); x; x = cow_map_next(m, x))
		r[i++] = (struct ckpt_rec){ x->start, x->count, x->state, x->written, { 0 } };
	struct ckpt_header h = { .epoch = epoch, .n = m->n, .sectors = m->sectors };
	memcpy(h.magic, CK_MAGIC, 8);
	h.data_crc = crc32c(0, r, m->n * CKPT_REC);
	h.hdr_crc = crc32c(0, &h, offsetof(struct ckpt_header, hdr_crc));
	memcpy(buf, &h, sizeof(h));
	struct cow_batch b;
	cow_batch_init(&b);
	for (uint64_t off = 0; off < total; off += 1024 * 1024) {
		uint32_t n = total - off < 1024 * 1024 ? (uint32_t)(total - off) : 1024 * 1024;
		cow_batch_add(&b, c->dev, COW_IO_WRITE, c->sb.ckpt_off[slot] + off, n, buf + off);
	}
	int rc = cow_batch_wait(&b, NULL);
	c->env->free(buf);
	return rc;
}

static void ckpt_rec_get(void *ctx, uint64_t i, struct cow_extent *e)
{
	const struct ckpt_rec *r = (const struct ckpt_rec *)ctx + i;
	*e = (struct cow_extent){ r->start, r->count, r->state, r->written };
}

static int ckpt_load(struct cow *c, uint32_t slot, char *why, size_t whylen)
{
	uint8_t *hb = c->iobuf;
	int rc = cow_bdev_read(c->dev, c->sb.ckpt_off[slot], META_BLOCK, hb, NULL);
	if (rc < 0) {
		set_why(why, whylen, "checkpoint %u is unreadable: %s", slot, err_str(rc));
		return rc;
	}
	struct ckpt_header h;
	memcpy(&h, hb, sizeof(h));
	if (memcmp(h.magic, CK_MAGIC, 8) || h.hdr_crc != crc32c(0, &h, offsetof(struct ckpt_header, hdr_crc)) ||
	    h.epoch != c->sb.journal_epoch || h.sectors != c->map.sectors || !h.n ||
	    c->sb.ckpt_bytes < CKPT_HDR || h.n > (c->sb.ckpt_bytes - CKPT_HDR) / CKPT_REC) {
		/* (Divided, not multiplied: a hostile count must not wrap past the slot's size.) */
		set_why(why, whylen, "checkpoint %u is corrupt or stale (header)", slot);
		return -E_CORRUPT;
	}
	uint64_t total = align_up(CKPT_HDR + h.n * CKPT_REC, META_BLOCK);
	uint8_t *buf = c->env->alloc(total);
	if (!buf)
		return -E_NOMEM;
	struct cow_batch b;
	cow_batch_init(&b);
	for (uint64_t off = 0; off < total; off += 1024 * 1024) {
		uint32_t n = total - off < 1024 * 1024 ? (uint32_t)(total - off) : 1024 * 1024;
		cow_batch_add(&b, c->dev, COW_IO_READ, c->sb.ckpt_off[slot] + off, n, buf + off);
	}
	rc = cow_batch_wait(&b, NULL);
	const struct ckpt_rec *r = (const struct ckpt_rec *)(buf + CKPT_HDR);
	if (rc == 0 && crc32c(0, r, h.n * CKPT_REC) != h.data_crc) {
		set_why(why, whylen, "checkpoint %u is corrupt (extent list checksum)", slot);
		rc = -E_CRC;
	}
	/* The extents must tile the source exactly: a map that overlaps itself is refused. */
	uint64_t next = 0;
	for (uint64_t i = 0; rc == 0 && i < h.n; i++) {
		if (r[i].start != next || !r[i].count || cow_state_index(r[i].state) < 0 || r[i].written > 1 ||
		    r[i].count > h.sectors - next) {
			set_why(why, whylen, "checkpoint %u: extent %llu overlaps, leaves a gap or has a bad state",
				slot, (unsigned long long)i);
			rc = -E_CORRUPT;
		}
		next += r[i].count;
	}
	if (rc == 0 && next != h.sectors) {
		set_why(why, whylen, "checkpoint %u does not cover the whole source", slot);
		rc = -E_CORRUPT;
	}
	if (rc == 0 && (rc = cow_map_load(&c->map, h.n, ckpt_rec_get, (void *)r)) < 0 && rc != -E_NOMEM)
		set_why(why, whylen, "checkpoint %u holds more extents (%llu) than the cow's maximum", slot,
			(unsigned long long)h.n);
	c->env->free(buf);
	return rc;
}

/* ---- the journal ------------------------------------------------------------------------- */

static uint32_t jrec_crc(const struct jrec *r)
{
	struct jrec t = *r;
	t.crc = 0;
	return crc32c(0, &t, sizeof(t));
}

/* Replays records of the current epoch, in order, up to the first torn or stale one. */
static int journal_replay(struct cow *c)
{
	uint64_t per = META_BLOCK / JREC;
	c->jnext = 0;
	c->jblocks = 0;
	for (uint64_t blk = 0; blk * META_BLOCK < c->sb.journal_bytes; blk++) {
		int rc = cow_bdev_read(c->dev, c->sb.journal_off + blk * META_BLOCK, META_BLOCK, c->iobuf, NULL);
		if (rc < 0)
			return 0;   /* unreadable journal: the map stays at the last good record */
		for (uint64_t i = 0; i < per; i++) {
			struct jrec r;
			memcpy(&r, c->iobuf + i * JREC, sizeof(r));
			if (r.magic == 0 && r.epoch == 0)
				continue;   /* padding at the end of a commit */
			if (r.magic != J_MAGIC || r.crc != jrec_crc(&r) || r.epoch != c->sb.journal_epoch ||
			    r.index != c->jnext)
				return 0;
			if (cow_map_set(&c->map, r.start, r.count, r.state, r.written) < 0)
				return 0;
			c->jnext++;
			c->jblocks = blk + 1;
		}
	}
	return 0;
}

/* ---- version 2: the paged map ------------------------------------------------------------- */

#define EXTENTS_MAX   (16ull << 20)   /* every source of 64 GiB or more */
#define SLOT_SPARE    16u
#define BATCH_PAGES   COW_BATCH

/* Pages a map of `max` extents can need at worst (chunks and groups half full), three times
 * over: the newest state, the other superblock's, and the commit being written. */
static uint64_t v2_slots_for(uint64_t max)
{
	uint64_t pages = max / CHUNK_MIN + 2, groups = pages / IDX_MIN + 2;
	return 3 * (pages + groups + 1) + SLOT_SPARE;
}

/* The most extents `slots` page slots can hold (the inverse of v2_slots_for). */
static uint64_t v2_extents_for(uint64_t slots)
{
	if (slots < SLOT_SPARE + 3 * 8)
		return 0;
	uint64_t per = (slots - SLOT_SPARE) / 3;   /* pages + groups + 1 */
	uint64_t pages = (per - 3) * IDX_MIN / (IDX_MIN + 1);
	return pages > 2 ? (pages - 2) * CHUNK_MIN : 0;
}

/* One extent per 4 KiB of source, at least 4096 and at most 16 M: the map never outgrows its
 * metadata area short of a bad sector in every 4 KiB of a source up to 64 GiB. */
static void v2_layout(struct superblock *sb, uint64_t src_size)
{
	uint64_t max = src_size / 4096;
	sb->max_extents = max < 4096 ? 4096 : max > EXTENTS_MAX ? EXTENTS_MAX : max;
	sb->page_off = 2 * META_BLOCK;
	sb->page_slots = v2_slots_for(sb->max_extents);
	sb->root_slot = SLOT_NONE;
	sb->data_off = align_up(sb->page_off + sb->page_slots * MAP_PAGE, 1024 * 1024);
}

uint64_t cow_metadata_bytes(uint64_t src_size)
{
	struct superblock sb;
	memset(&sb, 0, sizeof(sb));
	v2_layout(&sb, src_size);
	return sb.data_off;
}

static bool slot_busy(const struct cow *c, uint64_t s)
{
	return c->busy[s / 64] >> (s % 64) & 1;
}

static void slot_mark(struct cow *c, uint64_t s)
{
	if (!slot_busy(c, s)) {
		c->busy[s / 64] |= 1ull << (s % 64);
		c->nfree--;
	}
}

static void slot_release(struct cow *c, uint64_t s)
{
	if (s < c->sb.page_slots && slot_busy(c, s)) {
		c->busy[s / 64] &= ~(1ull << (s % 64));
		c->nfree++;
	}
}

/* The lowest free slot from the cursor on: the map's pages stay packed at the start of the
 * page area. Each commit starts the search again from slot 0. */
static uint32_t slot_alloc(struct cow *c)
{
	uint64_t n = c->sb.page_slots;
	for (uint64_t s = c->cursor; s < n;) {
		if (s % 64 == 0 && c->busy[s / 64] == ~0ull) {
			s += 64;
			continue;
		}
		if (!slot_busy(c, s)) {
			slot_mark(c, s);
			c->cursor = s + 1;
			return (uint32_t)s;
		}
		s++;
	}
	return SLOT_NONE;
}

static int busy_init(struct cow *c)
{
	uint64_t words = (c->sb.page_slots + 63) / 64;
	if (c->busy)
		c->env->free(c->busy);
	c->busy = c->env->alloc(words * 8);
	if (!c->busy)
		return -E_NOMEM;
	memset(c->busy, 0, words * 8);
	c->nfree = c->sb.page_slots;
	c->cursor = 0;
	c->nfreed_prev = 0;
	return 0;
}

static uint64_t slot_byte(const struct cow *c, uint64_t slot)
{
	return c->sb.page_off + slot * MAP_PAGE;
}

/* Remembers a slot to release once the next commit is durable. */
static void keep_freed(struct cow *c, uint32_t **list, uint64_t *n, uint64_t *cap, uint32_t slot)
{
	if (slot == SLOT_NONE)
		return;
	if (*n == *cap) {
		uint64_t nc = *cap ? *cap * 2 : 256;
		uint32_t *t = c->env->alloc(nc * sizeof(*t));
		if (!t)
			return;   /* the slot stays busy until the cow is opened again: never reused early */
		if (*n)
			memcpy(t, *list, *n * sizeof(*t));
		if (*list)
			c->env->free(*list);
		*list = t;
		*cap = nc;
	}
	(*list)[(*n)++] = slot;
}

/* ---- version 3: the log of map changes ---------------------------------------------------- */

#define SWEEP_CHUNKS  40u                           /* map pages a commit writes, with those it must */
#define SWEEP_MIN     8u                            /* at least so many of them in sector order */
#define LOG_PAGES_MAX IDX_MAX                       /* one index page names the whole log */
#define LOG_SOFT      (LOG_PAGES_MAX * 3 / 4)       /* past it, the sweep widens */
#define OPS_MAX       ((uint64_t)LOG_SOFT * LOG_MAX / 2)   /* a commit of more changes writes their pages */

static bool paged(const struct cow *c)
{
	return c->sb.version >= COW_V2;
}

static bool logged(const struct cow *c)
{
	return c->sb.version == COW_VERSION;
}

static int log_alloc(struct cow *c)
{
	if (c->log_slot)
		return 0;
	c->log_slot = c->env->alloc(LOG_PAGES_MAX * sizeof(*c->log_slot));
	c->log_crc = c->env->alloc(LOG_PAGES_MAX * sizeof(*c->log_crc));
	c->log_gen = c->env->alloc(LOG_PAGES_MAX * sizeof(*c->log_gen));
	c->log_tail = c->env->alloc(sizeof(*c->log_tail));
	c->log_n = 0;
	return c->log_slot && c->log_crc && c->log_gen && c->log_tail ? 0 : -E_NOMEM;
}

static void log_free(struct cow *c)
{
	void *p[] = { c->log_slot, c->log_crc, c->log_gen, c->log_tail, c->ops };
	for (int i = 0; i < 5; i++)
		if (p[i])
			c->env->free(p[i]);
	c->log_slot = c->log_crc = NULL;
	c->log_gen = NULL;
	c->log_tail = NULL;
	c->ops = NULL;
	c->log_n = 0;
	c->nops = c->capops = 0;
}

static struct map_log_rec log_rec(uint64_t start, uint64_t count, uint8_t state, int written)
{
	uint64_t st = state ? (uint64_t)cow_state_index(state) + 1 : 0, w = written < 0 ? 0 : written ? 2 : 1;
	return (struct map_log_rec){ start, count << 8 | w << 4 | st };
}

/* A change to the map, kept for the next commit's log. Without memory, or past OPS_MAX, the
 * next commit writes every changed page instead (as version 2 does). */
static void log_op(struct cow *c, uint64_t start, uint64_t count, uint8_t state, int written)
{
	if (c->ops_lost)
		return;
	if (c->nops == c->capops) {
		uint64_t cap = c->capops ? c->capops * 2 : 256;
		struct map_log_rec *t = c->nops < OPS_MAX ? c->env->alloc(cap * sizeof(*t)) : NULL;
		if (!t) {
			c->ops_lost = true;
			return;
		}
		if (c->nops)
			memcpy(t, c->ops, c->nops * sizeof(*t));
		if (c->ops)
			c->env->free(c->ops);
		c->ops = t;
		c->capops = cap;
	}
	c->ops[c->nops++] = log_rec(start, count, state, written);
}

/* The chunk holding `sector`. */
static uint64_t chunk_at(const struct cow_map *m, uint64_t sector)
{
	return map_floor(m->first, m->nchunks, sector);
}

struct undo { struct map_page_hdr h; struct cow_map_chunk *ch; uint32_t new; bool group; uint64_t g; uint32_t gold, gcrc; };

/* The new log of a commit, built before anything is written: the old log's pages from the
 * first one still needed, then this commit's changes (the last kept page rewritten with them
 * when it has room). */
struct new_log {
	uint32_t slot[LOG_PAGES_MAX], crc[LOG_PAGES_MAX];
	uint64_t gen[LOG_PAGES_MAX];
	uint32_t n, keep_from, kept, rewrite_tail;
	bool changed;
	struct map_log_page page[BATCH_PAGES], tail;
};

/* Writes a commit's pages into free slots and flushes; the superblock (the caller's) makes them
 * the map. Version 2, or a commit of more changes than the log takes: every changed map page,
 * the index pages of their groups, the root. Version 3: the changes into the log, and of the
 * map pages only those whose range changed (they must tile the source as the chunks do) and
 * the changed ones among the next SWEEP_CHUNKS in sector order; the log then keeps what the
 * oldest change still only in it needs. On failure nothing a superblock names was touched and
 * the map is as it was (its pages still changed). */
static int v2_write_pages(struct cow *c, uint32_t **freed, uint64_t *nfreed, uint64_t *freedcap)
{
	struct cow_map *m = &c->map;
	struct cow_map_index *x = m->idx;
	uint64_t seq = c->sb.seq + 1;
	/* A page whose first sector moved: its chunk and the one before it span other sectors now. */
	uint64_t must = 0;
	for (uint64_t k = 0; k < m->nchunks; k++) {
		struct cow_map_chunk *ch = m->chunk[k];
		if (ch->h.slot != SLOT_NONE && ch->h.first != m->first[k]) {
			ch->h.gen |= GEN_DIRTY | GEN_MOVED;
			if (k)
				m->chunk[k - 1]->h.gen |= GEN_DIRTY | GEN_MOVED;
		}
	}
	for (uint64_t k = 0; k < m->nchunks; k++)
		must += (m->chunk[k]->h.gen & (GEN_DIRTY | GEN_MOVED)) == (GEN_DIRTY | GEN_MOVED);
	bool log = logged(c) && !c->ops_lost && c->nops <= OPS_MAX;
	uint64_t k0 = 0, k1 = 0;
	struct new_log *nl = NULL;
	if (log) {
		if (!(nl = c->env->alloc(sizeof(*nl))))
			return -E_NOMEM;
		/* The sweep takes what the pages that must be written leave of SWEEP_CHUNKS (at least
		 * SWEEP_MIN), more once the log grows long. */
		uint64_t win = must + SWEEP_MIN < SWEEP_CHUNKS ? SWEEP_CHUNKS - must : SWEEP_MIN;
		if (c->log_n > LOG_SOFT)
			win += (uint64_t)(c->log_n - LOG_SOFT) * SWEEP_CHUNKS / 16;
		if (c->nops) {   /* a commit of nothing writes nothing */
			k0 = c->sb.sweep < m->sectors ? chunk_at(m, c->sb.sweep) : 0;
			k1 = k0 + win < m->nchunks ? k0 + win : m->nchunks;
		}
	}
relog:;
	/* What this commit writes: leaves, groups, and from which commit on the log is needed. */
	uint64_t need = 0, leaves = 0, p = UINT64_MAX;
	bool any = c->sb.root_slot == SLOT_NONE || x->nfreed || (logged(c) && !log && c->log_n);
	for (uint64_t g = 0; g < x->n; g++) {
		uint64_t end = g + 1 < x->n ? x->first[g + 1] : m->nchunks;
		bool gw = x->dirty[g];
		for (uint64_t k = x->first[g]; k < end; k++) {
			uint64_t gen = m->chunk[k]->h.gen;
			if (!(gen & GEN_DIRTY))
				continue;
			if (!log || (gen & GEN_MOVED) || (k >= k0 && k < k1)) {
				leaves++;
				gw = true;
			} else if (GEN_SEQ(gen) < p) {
				p = GEN_SEQ(gen);
			}
		}
		need += gw;
		any |= gw;
	}
	need += leaves + 1;
	if (log) {
		/* The log from its first page still needed (gens rise along it), then this commit's. */
		uint32_t from = 0;
		while (from < c->log_n && c->log_gen[from] < p)
			from++;
		nl->keep_from = from;
		nl->kept = c->log_n - from;
		uint64_t add = p == UINT64_MAX ? 0 : c->nops, tail_n = 0;
		nl->rewrite_tail = nl->kept && add && c->log_tail->h.n < LOG_MAX;
		if (nl->rewrite_tail)
			tail_n = c->log_tail->h.n;
		uint64_t pages = nl->kept - nl->rewrite_tail + (tail_n + add + LOG_MAX - 1) / LOG_MAX;
		if (pages > LOG_PAGES_MAX) {
			log = false;   /* the log would overflow: this commit writes every changed page */
			goto relog;
		}
		nl->n = (uint32_t)pages;
		nl->changed = from || add;
		any |= nl->changed;
		need += (pages - nl->kept + nl->rewrite_tail) + (nl->changed && pages);
	}
	if (!any) {
		if (nl)
			c->env->free(nl);
		return 0;
	}
	if (x->n > IDX_MAX || need > c->nfree) {
		if (log) {
			log = false;
			goto relog;
		}
		if (nl)
			c->env->free(nl);
		return -E_NOSPC;
	}
	c->cursor = 0;
	struct undo *u = c->env->alloc((need + 1) * sizeof(*u));
	uint8_t *ibuf = c->env->alloc((BATCH_PAGES + 1) * MAP_PAGE);
	if (!u || !ibuf) {
		if (u)
			c->env->free(u);
		if (ibuf)
			c->env->free(ibuf);
		if (nl)
			c->env->free(nl);
		return -E_NOMEM;
	}
	uint64_t nu = 0;
	int rc = 0;
	struct cow_batch b;
	cow_batch_init(&b);
	/* 1. Leaves. */
	for (uint64_t k = 0; k < m->nchunks && rc == 0; k++) {
		struct cow_map_chunk *ch = m->chunk[k];
		uint64_t gen = ch->h.gen;
		if (!(gen & GEN_DIRTY) || (log && !(gen & GEN_MOVED) && !(k >= k0 && k < k1)))
			continue;
		uint32_t s = slot_alloc(c);
		u[nu++] = (struct undo){ .h = ch->h, .ch = ch, .new = s };
		ch->h.magic = PAGE_LEAF;
		ch->h.slot = s;
		ch->h.gen = seq;
		ch->h.first = m->first[k];
		ch->h.crc = map_page_crc(ch);
		if (b.n == COW_BATCH)
			rc = cow_batch_wait(&b, NULL), cow_batch_init(&b);
		cow_batch_add(&b, c->dev, COW_IO_WRITE, slot_byte(c, s), MAP_PAGE, ch);
	}
	int brc = cow_batch_wait(&b, NULL);
	rc = rc < 0 ? rc : brc;
	/* 2. Index pages of the groups that changed or had a member written, BATCH_PAGES at a time. */
	bool groups = false;
	cow_batch_init(&b);
	for (uint64_t g = 0; g < x->n && rc == 0; g++) {
		uint64_t end = g + 1 < x->n ? x->first[g + 1] : m->nchunks;
		bool gw = x->dirty[g];
		for (uint64_t k = x->first[g]; k < end && !gw; k++)
			gw = m->chunk[k]->h.gen == seq;
		if (!gw)
			continue;
		groups = true;
		if (b.n == COW_BATCH) {
			rc = cow_batch_wait(&b, NULL);
			cow_batch_init(&b);
			if (rc < 0)
				break;
		}
		struct map_idx_page *ip = (struct map_idx_page *)(ibuf + b.n * MAP_PAGE);
		memset(ip, 0, MAP_PAGE);
		uint32_t s = slot_alloc(c);
		u[nu++] = (struct undo){ .new = s, .group = true, .g = g, .gold = x->slot[g], .gcrc = x->crc[g] };
		ip->h = (struct map_page_hdr){ PAGE_INDEX, 0, (uint32_t)(end - x->first[g]), s, seq, m->first[x->first[g]] };
		for (uint64_t k = x->first[g]; k < end; k++)
			ip->e[k - x->first[g]] = (struct map_idx_ent){ m->chunk[k]->h.slot, m->chunk[k]->h.crc };
		ip->h.crc = map_page_crc(ip);
		x->slot[g] = s;
		x->crc[g] = ip->h.crc;
		cow_batch_add(&b, c->dev, COW_IO_WRITE, slot_byte(c, s), MAP_PAGE, ip);
	}
	brc = cow_batch_wait(&b, NULL);
	rc = rc < 0 ? rc : brc;
	/* 3. The root, when a group's page or the set of pages changed. */
	uint32_t root = (uint32_t)c->sb.root_slot, root_crc = (uint32_t)c->sb.root_crc;
	bool new_root = groups || c->sb.root_slot == SLOT_NONE || x->nfreed;
	struct map_idx_page *r = (struct map_idx_page *)(ibuf + BATCH_PAGES * MAP_PAGE);
	if (rc == 0 && new_root) {
		root = slot_alloc(c);
		memset(r, 0, MAP_PAGE);
		/* (a root's "first" is the source's size: with both superblocks lost, it gives the layout) */
		r->h = (struct map_page_hdr){ PAGE_ROOT, 0, (uint32_t)x->n, root, seq, c->sb.src_size };
		for (uint64_t g = 0; g < x->n; g++)
			r->e[g] = (struct map_idx_ent){ x->slot[g], x->crc[g] };
		r->h.crc = map_page_crc(r);
		root_crc = r->h.crc;
		rc = cow_bdev_write(c->dev, slot_byte(c, root), MAP_PAGE, r);
	}
	/* 4. The log: this commit's changes in new pages, then the log's index page. */
	uint32_t log_slot = SLOT_NONE, log_crc = 0;
	uint64_t log_recs = 0, first_new = 0;
	if (log && !nl->changed) {
		log_slot = c->sb.log_slot;
		log_crc = c->sb.log_crc;
		log_recs = c->sb.log_recs;
	} else if (rc == 0 && log) {
		for (uint32_t i = 0; i < nl->kept - nl->rewrite_tail; i++) {
			nl->slot[i] = c->log_slot[nl->keep_from + i];
			nl->crc[i] = c->log_crc[nl->keep_from + i];
			nl->gen[i] = c->log_gen[nl->keep_from + i];
		}
		first_new = nl->kept - nl->rewrite_tail;
		uint64_t op = 0, add = p == UINT64_MAX ? 0 : c->nops;
		cow_batch_init(&b);
		for (uint32_t i = (uint32_t)first_new; i < nl->n && rc == 0; i++) {
			if (b.n == COW_BATCH) {
				rc = cow_batch_wait(&b, NULL);
				cow_batch_init(&b);
				if (rc < 0)
					break;
			}
			struct map_log_page *lp = &nl->page[b.n];
			memset(lp, 0, MAP_PAGE);
			if (i == first_new && nl->rewrite_tail)
				memcpy(lp, c->log_tail, MAP_PAGE);
			while (lp->h.n < LOG_MAX && op < add)
				lp->r[lp->h.n++] = c->ops[op++];
			uint32_t s = slot_alloc(c);
			u[nu++] = (struct undo){ .new = s };
			/* (a log page's "first" is the commit of its first change) */
			uint64_t first = i == first_new && nl->rewrite_tail ? c->log_tail->h.first : seq;
			lp->h = (struct map_page_hdr){ PAGE_LOG, 0, lp->h.n, s, seq, first };
			lp->h.crc = map_page_crc(lp);
			nl->slot[i] = s;
			nl->crc[i] = lp->h.crc;
			nl->gen[i] = seq;
			if (i + 1 == nl->n)
				memcpy(&nl->tail, lp, MAP_PAGE);
			cow_batch_add(&b, c->dev, COW_IO_WRITE, slot_byte(c, s), MAP_PAGE, lp);
		}
		brc = cow_batch_wait(&b, NULL);
		rc = rc < 0 ? rc : brc;
		if (rc == 0 && nl->n) {
			struct map_idx_page *ix = (struct map_idx_page *)ibuf;
			memset(ix, 0, MAP_PAGE);
			log_slot = slot_alloc(c);
			u[nu++] = (struct undo){ .new = log_slot };
			for (uint32_t i = 0; i < nl->n; i++)
				ix->e[i] = (struct map_idx_ent){ nl->slot[i], nl->crc[i] };
			log_recs = (uint64_t)(nl->n - 1) * LOG_MAX + (nl->n > first_new ? nl->tail.h.n : c->log_tail->h.n);
			ix->h = (struct map_page_hdr){ PAGE_LOGIX, 0, nl->n, log_slot, seq, log_recs };
			ix->h.crc = map_page_crc(ix);
			log_crc = ix->h.crc;
			rc = cow_bdev_write(c->dev, slot_byte(c, log_slot), MAP_PAGE, ix);
		}
	}
	if (rc == 0)
		rc = cow_bdev_flush(c->dev);
	if (rc < 0) {
		/* Nothing a superblock names was written: the new slots go back, the pages keep their
		 * old places and stay changed. */
		for (uint64_t i = 0; i < nu; i++) {
			slot_release(c, u[i].new);
			if (u[i].group) {
				x->slot[u[i].g] = u[i].gold;
				x->crc[u[i].g] = u[i].gcrc;
			} else if (u[i].ch) {
				u[i].ch->h = u[i].h;
				u[i].ch->h.gen |= GEN_DIRTY;
			}
		}
		if (new_root && root != (uint32_t)c->sb.root_slot)
			slot_release(c, root);
		c->env->free(u);
		c->env->free(ibuf);
		if (nl)
			c->env->free(nl);
		return rc;
	}
	/* The slots this commit replaced or the map dropped: free once the next one is durable. */
	for (uint64_t i = 0; i < nu; i++) {
		if (u[i].group)
			keep_freed(c, freed, nfreed, freedcap, u[i].gold);
		else if (u[i].ch)
			keep_freed(c, freed, nfreed, freedcap, u[i].h.slot);
	}
	for (uint64_t i = 0; i < x->nfreed; i++)
		keep_freed(c, freed, nfreed, freedcap, x->freed[i]);
	if (new_root)
		keep_freed(c, freed, nfreed, freedcap, (uint32_t)c->sb.root_slot);
	if (logged(c) && (!log || nl->changed)) {
		/* The log pages not kept, the tail rewritten, the old index page. */
		uint32_t keep_from = log ? nl->keep_from : c->log_n, kept = log ? (uint32_t)first_new : 0;
		for (uint32_t i = 0; i < c->log_n; i++)
			if (i < keep_from || i >= keep_from + kept)
				keep_freed(c, freed, nfreed, freedcap, c->log_slot[i]);
		keep_freed(c, freed, nfreed, freedcap, c->sb.log_slot);
		c->log_n = log ? nl->n : 0;
		for (uint32_t i = 0; i < c->log_n; i++) {
			c->log_slot[i] = nl->slot[i];
			c->log_crc[i] = nl->crc[i];
			c->log_gen[i] = nl->gen[i];
		}
		if (log && nl->n > first_new)
			memcpy(c->log_tail, &nl->tail, MAP_PAGE);
		c->sb.log_slot = log_slot;
		c->sb.log_crc = log_crc;
		c->sb.log_recs = log_recs;
	}
	if (logged(c)) {
		if (log && k1 > k0)
			c->sb.sweep = k1 < m->nchunks ? m->first[k1] : 0;
		c->nops = 0;
		c->ops_lost = false;
	}
	x->nfreed = 0;
	memset(x->dirty, 0, x->n);
	c->sb.root_slot = root;
	c->sb.root_crc = root_crc;
	c->sb.map_extents = m->n;
	c->sb.map_pages = m->nchunks;
	c->env->free(u);
	c->env->free(ibuf);
	if (nl)
		c->env->free(nl);
	return 0;
}

/* After the superblock naming the new map is durable: what the commit before it dropped is
 * named by no superblock any more. */
static void v2_committed(struct cow *c, uint32_t *freed, uint64_t nfreed, uint64_t cap)
{
	for (uint64_t i = 0; i < c->nfreed_prev; i++)
		slot_release(c, c->freed_prev[i]);
	if (c->freed_prev)
		c->env->free(c->freed_prev);
	c->freed_prev = freed;
	c->nfreed_prev = nfreed;
	c->freed_prev_cap = cap;
}

struct v2_tree {
	uint32_t *gslot, *gcrc, *gcount, *lslot, *lcrc;
	uint64_t ng, nl;
};

static void tree_free(const struct cow_env *env, struct v2_tree *t)
{
	uint32_t *p[] = { t->gslot, t->gcrc, t->gcount, t->lslot, t->lcrc };
	for (int i = 0; i < 5; i++)
		if (p[i])
			env->free(p[i]);
	memset(t, 0, sizeof(*t));
}

/* A page read from `slot` is what its parent says: magic, place, checksums, a sane count. */
static int page_check(const struct cow *c, const void *page, uint32_t magic, uint32_t slot, uint32_t crc,
		      uint32_t maxn, const char *what, char *why, size_t whylen)
{
	struct map_page_hdr h;
	memcpy(&h, page, sizeof(h));
	uint64_t at = slot_byte(c, slot);
	if (h.magic != magic) {
		set_why(why, whylen, "%s at slot %u (byte %llu) is not one (magic %08x)", what, slot,
			(unsigned long long)at, h.magic);
		return -E_CORRUPT;
	}
	if (h.crc != map_page_crc(page)) {
		set_why(why, whylen, "%s at slot %u (byte %llu) has a bad checksum", what, slot, (unsigned long long)at);
		return -E_CRC;
	}
	if (h.crc != crc || h.slot != slot) {
		set_why(why, whylen, "%s at slot %u (byte %llu) is not the one its parent names (stale)", what, slot,
			(unsigned long long)at);
		return -E_CORRUPT;
	}
	if (!h.n || h.n > maxn) {
		set_why(why, whylen, "%s at slot %u (byte %llu) claims %u entries", what, slot, (unsigned long long)at, h.n);
		return -E_CORRUPT;
	}
	return 0;
}

/* A child's slot: inside the page area, and named only once in the whole tree. */
static int child_ok(struct cow *c, uint32_t slot, const char *what, uint32_t parent, char *why, size_t whylen)
{
	if (slot >= c->sb.page_slots) {
		set_why(why, whylen, "the page at slot %u names a %s at slot %u, outside the metadata area (%llu slots)",
			parent, what, slot, (unsigned long long)c->sb.page_slots);
		return -E_CORRUPT;
	}
	if (slot_busy(c, slot)) {
		set_why(why, whylen, "the page at slot %u names a %s at slot %u, which is already in the map (a loop or a shared page)",
			parent, what, slot);
		return -E_CORRUPT;
	}
	slot_mark(c, slot);
	return 0;
}

/* Reads the root and index pages of sb's map: the slots of its groups and leaves, each marked
 * busy. */
static int v2_read_tree(struct cow *c, const struct superblock *sb, struct v2_tree *t, char *why, size_t whylen)
{
	memset(t, 0, sizeof(*t));
	uint32_t root = (uint32_t)sb->root_slot;
	if (sb->root_slot >= sb->page_slots) {
		set_why(why, whylen, "the superblock names a map root at slot %llu, outside the metadata area",
			(unsigned long long)sb->root_slot);
		return -E_CORRUPT;
	}
	slot_mark(c, root);
	uint8_t *pg = c->env->alloc(MAP_PAGE);
	if (!pg)
		return -E_NOMEM;
	int rc = cow_bdev_read(c->dev, slot_byte(c, root), MAP_PAGE, pg, NULL);
	if (rc < 0)
		set_why(why, whylen, "the map root at slot %u is unreadable: %s", root, err_str(rc));
	if (rc == 0)
		rc = page_check(c, pg, PAGE_ROOT, root, (uint32_t)sb->root_crc, IDX_MAX, "the map root", why, whylen);
	const struct map_idx_page *p = (const struct map_idx_page *)pg;
	uint64_t ng = rc == 0 ? p->h.n : 0;
	if (rc == 0) {
		t->gslot = c->env->alloc(ng * 4);
		t->gcrc = c->env->alloc(ng * 4);
		t->gcount = c->env->alloc(ng * 4);
		t->lslot = c->env->alloc(ng * IDX_MAX * 4);
		t->lcrc = c->env->alloc(ng * IDX_MAX * 4);
		if (!t->gslot || !t->gcrc || !t->gcount || !t->lslot || !t->lcrc)
			rc = -E_NOMEM;
	}
	for (uint64_t g = 0; g < ng && rc == 0; g++) {
		t->gslot[g] = p->e[g].slot;
		t->gcrc[g] = p->e[g].crc;
		rc = child_ok(c, t->gslot[g], "index page", root, why, whylen);
	}
	t->ng = ng;
	for (uint64_t g = 0; g < ng && rc == 0; g++) {
		rc = cow_bdev_read(c->dev, slot_byte(c, t->gslot[g]), MAP_PAGE, pg, NULL);
		if (rc < 0) {
			set_why(why, whylen, "index page %llu at slot %u is unreadable: %s", (unsigned long long)g,
				t->gslot[g], err_str(rc));
			break;
		}
		rc = page_check(c, pg, PAGE_INDEX, t->gslot[g], t->gcrc[g], IDX_MAX, "index page", why, whylen);
		t->gcount[g] = rc == 0 ? p->h.n : 0;
		for (uint32_t i = 0; i < t->gcount[g] && rc == 0; i++) {
			t->lslot[t->nl] = p->e[i].slot;
			t->lcrc[t->nl] = p->e[i].crc;
			rc = child_ok(c, p->e[i].slot, "map page", t->gslot[g], why, whylen);
			t->nl++;
		}
	}
	c->env->free(pg);
	if (rc < 0)
		tree_free(c->env, t);
	return rc;
}

/* Loads sb's map: every leaf checked on its own (magic, checksum, place) and against its
 * neighbours (the extents tile the source in order, neighbours differ). */
static int v2_load(struct cow *c, const struct superblock *sb, char *why, size_t whylen)
{
	int rc = busy_init(c);
	if (rc < 0)
		return rc;
	struct v2_tree t;
	if ((rc = v2_read_tree(c, sb, &t, why, whylen)) < 0)
		return rc;
	struct cow_map_chunk **ch = c->env->alloc((t.nl ? t.nl : 1) * sizeof(*ch));
	if (!ch) {
		tree_free(c->env, &t);
		return -E_NOMEM;
	}
	uint64_t got = 0, n = 0, sectors = c->map.sectors, next_min = 0;
	unsigned prev = 0xff;
	/* Version 3 writes pages at different commits: two that meet may end and start alike until
	 * the log is replayed (map_normalize), and the extent count is checked after it. */
	bool v3 = sb->version == COW_VERSION;
	for (uint64_t base = 0; base < t.nl && rc == 0; base += COW_BATCH) {
		struct cow_batch b;
		cow_batch_init(&b);
		for (uint64_t i = base; i < t.nl && i < base + COW_BATCH; i++) {
			if (!(ch[i] = c->env->alloc(sizeof(struct cow_map_chunk)))) {
				rc = -E_NOMEM;
				break;
			}
			got = i + 1;
			cow_batch_add(&b, c->dev, COW_IO_READ, slot_byte(c, t.lslot[i]), MAP_PAGE, ch[i]);
		}
		int brc = cow_batch_wait(&b, NULL);
		if (rc == 0 && brc < 0) {
			set_why(why, whylen, "a map page among slots %u.. is unreadable: %s", t.lslot[base], err_str(brc));
			rc = brc;
		}
		for (uint64_t i = base; i < got && rc == 0; i++) {
			struct cow_map_chunk *p = ch[i];
			rc = page_check(c, p, PAGE_LEAF, t.lslot[i], t.lcrc[i], CHUNK_MAX, "map page", why, whylen);
			for (uint32_t j = 0; j < p->h.n && rc == 0; j++) {
				uint64_t s = ENT_START(p->e[j]);
				unsigned f = ENT_FLAGS(p->e[j]);
				bool same = f == prev && (j || !v3);
				if (s < next_min || s >= sectors || (i == 0 && j == 0 && s != 0) || (f & 7) > 4 || same) {
					set_why(why, whylen, "map page at slot %u (byte %llu), extent %u (sector %llu): %s",
						t.lslot[i], (unsigned long long)slot_byte(c, t.lslot[i]), j, (unsigned long long)s,
						s < next_min ? "overlaps the extents before it (two pages claim one range)" :
						s >= sectors ? "lies past the source's end" : same ? "equals the extent before it" :
						(f & 7) > 4 ? "has a bad state" : "does not start the map at sector 0");
					rc = -E_CORRUPT;
				}
				next_min = s + 1;
				prev = f;
			}
			if (rc == 0 && p->h.first != ENT_START(p->e[0])) {
				set_why(why, whylen, "map page at slot %u: its header's first sector disagrees with its extents",
					t.lslot[i]);
				rc = -E_CORRUPT;
			}
			n += p->h.n;
		}
	}
	if (rc == 0 && !v3 && ((sb->map_extents != UINT64_MAX && n != sb->map_extents) || n > sb->max_extents)) {
		set_why(why, whylen, "the map holds %llu extents, the superblock says %llu (at most %llu)",
			(unsigned long long)n, (unsigned long long)sb->map_extents, (unsigned long long)sb->max_extents);
		rc = -E_CORRUPT;
	}
	if (rc < 0) {
		for (uint64_t i = 0; i < got; i++)
			c->env->free(ch[i]);
	} else {
		rc = map_adopt(&c->map, ch, t.nl, n, t.gcount, t.gslot, t.gcrc, t.ng);
	}
	c->env->free(ch);
	tree_free(c->env, &t);
	return rc;
}

/* Reads sb's log (version 3): its index page and its pages, each checked like the map's pages
 * and marked busy; with `replay`, their changes are made to the map in order and the log
 * becomes the cow's. */
static int v3_read_log(struct cow *c, const struct superblock *sb, bool replay, char *why, size_t whylen)
{
	if (sb->version != COW_VERSION || sb->log_slot == SLOT_NONE)
		return 0;
	uint32_t ls = sb->log_slot;
	if (ls >= sb->page_slots || slot_busy(c, ls)) {
		set_why(why, whylen, "the superblock names a log at slot %u, %s", ls,
			ls >= sb->page_slots ? "outside the metadata area" : "which is already in the map (a shared page)");
		return -E_CORRUPT;
	}
	slot_mark(c, ls);
	struct map_idx_page *ix = c->env->alloc(2 * MAP_PAGE);
	if (!ix)
		return -E_NOMEM;
	struct map_log_page *lp = (struct map_log_page *)(ix + 1);
	int rc = cow_bdev_read(c->dev, slot_byte(c, ls), MAP_PAGE, ix, NULL);
	if (rc < 0)
		set_why(why, whylen, "the log's index page at slot %u is unreadable: %s", ls, err_str(rc));
	if (rc == 0)
		rc = page_check(c, ix, PAGE_LOGIX, ls, sb->log_crc, LOG_PAGES_MAX, "the log's index page", why, whylen);
	for (uint32_t i = 0; rc == 0 && i < ix->h.n; i++)
		rc = child_ok(c, ix->e[i].slot, "log page", ls, why, whylen);
	uint64_t recs = 0, gen = 0, sectors = sb->src_size / sb->src_lsize;
	for (uint32_t i = 0; rc == 0 && i < ix->h.n; i++) {
		uint32_t s = ix->e[i].slot;
		rc = cow_bdev_read(c->dev, slot_byte(c, s), MAP_PAGE, lp, NULL);
		if (rc < 0) {
			set_why(why, whylen, "log page %u at slot %u is unreadable: %s", i, s, err_str(rc));
			break;
		}
		rc = page_check(c, lp, PAGE_LOG, s, ix->e[i].crc, LOG_MAX, "log page", why, whylen);
		if (rc == 0 && (lp->h.gen < gen || lp->h.gen > sb->seq || lp->h.first > lp->h.gen)) {
			set_why(why, whylen, "log page at slot %u was written by commit %llu, out of order", s,
				(unsigned long long)lp->h.gen);
			rc = -E_CORRUPT;
		}
		gen = lp->h.gen;
		if (replay)
			c->map.next_commit = lp->h.first;   /* what a chunk this page changes needs of the log */
		for (uint32_t j = 0; rc == 0 && j < lp->h.n; j++) {
			uint64_t st = lp->r[j].start, cf = lp->r[j].count_flags, cnt = cf >> 8;
			unsigned sc = cf & 15, wc = (cf >> 4) & 15;
			if (st >= sectors || !cnt || cnt > sectors - st || sc > 5 || wc > 2) {
				set_why(why, whylen, "log page at slot %u (byte %llu), record %u: a change of sectors %llu+%llu "
					"that cannot be", s, (unsigned long long)slot_byte(c, s), j, (unsigned long long)st,
					(unsigned long long)cnt);
				rc = -E_CORRUPT;
			} else if (replay) {
				rc = cow_map_set(&c->map, st, cnt, sc ? map_state_char(sc - 1) : 0, wc ? (int)wc - 1 : -1);
				if (rc < 0)
					set_why(why, whylen, "log page at slot %u, record %u: replaying it failed: %s", s, j,
						err_str(rc));
			}
		}
		recs += lp->h.n;
		if (rc == 0 && replay) {
			c->log_slot[i] = s;
			c->log_crc[i] = ix->e[i].crc;
			c->log_gen[i] = lp->h.gen;
			c->log_n = i + 1;
			memcpy(c->log_tail, lp, MAP_PAGE);
		}
	}
	if (rc == 0 && (recs != sb->log_recs || ix->h.first != recs)) {
		set_why(why, whylen, "the log holds %llu changes, the superblock says %llu", (unsigned long long)recs,
			(unsigned long long)sb->log_recs);
		rc = -E_CORRUPT;
	}
	c->env->free(ix);
	return rc;
}

/* The other superblock's pages stay untouched until the next commit replaces it: they are
 * marked busy and released by that commit. Its map is only walked, never loaded. */
static void v2_protect_other(struct cow *c, const struct superblock *o)
{
	uint64_t *mine = c->busy, words = (c->sb.page_slots + 63) / 64, nfree = c->nfree;
	uint64_t *seen = c->env->alloc(words * 8);
	if (!seen)
		return;
	if (o->version == COW_V1) {
		/* An upgraded cow: the old checkpoint and journal, where they overlap the page area. */
		uint64_t lo[2] = { o->ckpt_off[o->active_ckpt & 1], o->journal_off };
		uint64_t len[2] = { o->ckpt_bytes, o->journal_bytes };
		memcpy(seen, mine, words * 8);
		c->busy = seen;
		for (int r = 0; r < 2; r++)
			for (uint64_t b = lo[r]; b < lo[r] + len[r] && b < slot_byte(c, c->sb.page_slots); b += MAP_PAGE)
				if (b >= c->sb.page_off && !slot_busy(c, (b - c->sb.page_off) / MAP_PAGE)) {
					slot_mark(c, (b - c->sb.page_off) / MAP_PAGE);
					keep_freed(c, &c->freed_prev, &c->nfreed_prev, &c->freed_prev_cap,
						   (uint32_t)((b - c->sb.page_off) / MAP_PAGE));
				}
		c->env->free(mine);
		return;
	}
	if (o->version < COW_V2 || o->page_off != c->sb.page_off || o->page_slots != c->sb.page_slots) {
		c->env->free(seen);
		return;
	}
	/* Walk the other tree with a scratch bitmap, then add what only it names. */
	memset(seen, 0, words * 8);
	c->busy = seen;
	c->nfree = c->sb.page_slots;
	struct v2_tree t;
	char why[8];
	int rc = v2_read_tree(c, o, &t, why, sizeof(why));
	if (rc == 0 && v3_read_log(c, o, false, why, sizeof(why)) < 0)
		rc = 1;   /* (its tree's slots are kept; what of its log could be read too) */
	c->busy = mine;
	c->nfree = nfree;
	if (rc >= 0) {
		for (uint64_t s = 0; s < c->sb.page_slots; s++)
			if ((seen[s / 64] >> (s % 64) & 1) && !slot_busy(c, s)) {
				slot_mark(c, s);
				keep_freed(c, &c->freed_prev, &c->nfreed_prev, &c->freed_prev_cap, (uint32_t)s);
			}
		tree_free(c->env, &t);
	}
	c->env->free(seen);
}

/* ---- format / open / commit -------------------------------------------------------------- */

/* Where everything lies for a source of `sectors`: fixed by the format, so a checkpoint's
 * header alone is enough to find the rest when both superblocks are lost. */
static void layout(struct superblock *sb, uint64_t sectors)
{
	sb->max_extents = sectors / 64 < 1024 ? 1024 : sectors / 64 > (1u << 20) ? (1u << 20) : sectors / 64;
	sb->ckpt_bytes = align_up(CKPT_HDR + sb->max_extents * CKPT_REC, META_BLOCK);
	sb->ckpt_off[0] = 2 * META_BLOCK;
	sb->ckpt_off[1] = sb->ckpt_off[0] + sb->ckpt_bytes;
	sb->journal_off = sb->ckpt_off[1] + sb->ckpt_bytes;
	sb->journal_bytes = JOURNAL_BYTES;
	sb->data_off = align_up(sb->journal_off + sb->journal_bytes, 1024 * 1024);
}

int cow_format(const struct cow_env *env, const struct cow_bdev *cowdev, const struct cow_bdev *src,
	       uint32_t unit, char *why, size_t whylen)
{
	return cow_format_version(env, cowdev, src, unit, COW_VERSION, why, whylen);
}

int cow_format_version(const struct cow_env *env, const struct cow_bdev *cowdev, const struct cow_bdev *src,
		       uint32_t unit, uint32_t version, char *why, size_t whylen)
{
	if (version != COW_VERSION && version != COW_V2 && version != COW_V1)
		return -E_VERSION;
	if (!unit)
		unit = 4096;
	if ((unit & (unit - 1)) || unit < src->lsize || src->lsize < 512 || src->lsize > META_BLOCK ||
	    cowdev->lsize > META_BLOCK || src->lsize % cowdev->lsize) {
		set_why(why, whylen, "unit %u must be a power of two of at least the source sector (%u), "
			"and the cow's sector (%u) must divide it", unit, src->lsize, cowdev->lsize);
		return -E_INVAL;
	}
	struct superblock sb;
	memset(&sb, 0, sizeof(sb));
	memcpy(sb.magic, SB_MAGIC, 8);
	sb.version = version;
	sb.sb_size = SB_SIZE;
	env->random(sb.uuid, sizeof(sb.uuid));
	sb.unit = unit;
	sb.cow_lsize = cowdev->lsize;
	uint64_t sectors = src->size / src->lsize;
	if (version == COW_V1)
		layout(&sb, sectors);
	else
		v2_layout(&sb, src->size);
	sb.log_slot = SLOT_NONE;
	if (cowdev->size < sb.data_off || cowdev->size - sb.data_off < src->size) {
		set_why(why, whylen, "the cow needs %llu bytes (source %llu + metadata %llu), the device has %llu",
			(unsigned long long)(sb.data_off + src->size), (unsigned long long)src->size,
			(unsigned long long)sb.data_off, (unsigned long long)cowdev->size);
		return -E_TOOSMALL;
	}
	int rc = read_identity(env, src, &sb);
	if (rc < 0)
		return rc;

	struct cow c = { .env = env, .dev = cowdev, .sb = sb };
	c.iobuf = env->alloc(META_BLOCK);
	if (!c.iobuf)
		return -E_NOMEM;
	rc = cow_map_init(&c.map, env, sectors, sb.max_extents);
	if (rc < 0)
		goto free_buf;
	/* The first map (one page, its index page, the root) into the empty page area. */
	uint32_t *freed = NULL;
	uint64_t nfreed = 0, freedcap = 0;
	if (version == COW_V1) {
		/* A fresh epoch's empty journal: zeroed so no stale record of an old cow can replay. */
		memset(c.iobuf, 0, META_BLOCK);
		struct cow_batch b;
		cow_batch_init(&b);
		for (uint64_t off = 0; off < sb.journal_bytes; off += META_BLOCK)
			cow_batch_add(&b, cowdev, COW_IO_WRITE, sb.journal_off + off, META_BLOCK, c.iobuf);
		rc = cow_batch_wait(&b, NULL);
		c.sb.journal_epoch = 1;
		if (rc == 0)
			rc = ckpt_write(&c, 0, 1);
		if (rc == 0)
			rc = cow_bdev_flush(cowdev);
	} else {
		rc = busy_init(&c);
		if (rc == 0)
			rc = v2_write_pages(&c, &freed, &nfreed, &freedcap);
		if (freed)
			env->free(freed);
	}
	/* Both superblocks, B first: a cut in between leaves A invalid or old and B valid. */
	for (int i = 1; i >= 0 && rc == 0; i--) {
		c.sb.self_off = (uint64_t)i * META_BLOCK;
		c.sb.seq = (uint64_t)(2 - i);
		sb_seal(&c.sb, c.iobuf);
		rc = cow_bdev_write(cowdev, c.sb.self_off, META_BLOCK, c.iobuf);
		if (rc == 0)
			rc = cow_bdev_flush(cowdev);
	}
	if (rc < 0)
		set_why(why, whylen, "writing the cow metadata failed: %s", err_str(rc));
	cow_map_free(&c.map);
	if (c.busy)
		env->free(c.busy);
free_buf:
	env->free(c.iobuf);
	return rc;
}

static int check_identity(struct cow *c, const struct superblock *sb, const struct cow_bdev *src, char *why,
			  size_t whylen)
{
	if (!src)
		return 0;
	struct superblock now;
	memset(&now, 0, sizeof(now));
	int rc = read_identity(c->env, src, &now);
	if (rc == 0)
		rc = identity_differs(sb, &now, why, whylen);
	return rc;
}

/* A version-2 superblock's layout fits the device (checked before anything is sized by it). */
static bool v2_geometry_ok(const struct cow *c, const struct superblock *sb)
{
	return sb->src_lsize >= 512 && sb->src_lsize <= META_BLOCK && !(sb->src_size % sb->src_lsize) &&
	       sb->page_off == 2 * META_BLOCK && sb->page_slots >= 8 && sb->page_slots < SLOT_NONE &&
	       sb->page_slots <= c->dev->size / MAP_PAGE && sb->data_off >= sb->page_off + sb->page_slots * MAP_PAGE &&
	       sb->data_off <= c->dev->size && sb->src_size <= c->dev->size - sb->data_off && sb->max_extents &&
	       sb->max_extents <= 4 * EXTENTS_MAX;
}

static int load_v2(struct cow *c, const struct superblock *sb, int which, const struct cow_bdev *src, char *why,
		   size_t whylen)
{
	if (!v2_geometry_ok(c, sb)) {
		set_why(why, whylen, "superblock %c describes an impossible geometry", 'A' + which);
		return -E_CORRUPT;
	}
	int rc = check_identity(c, sb, src, why, whylen);
	if (rc < 0)
		return rc;
	c->lsize = sb->src_lsize;
	c->fresh_epoch = false;
	cow_map_free(&c->map);
	rc = cow_map_init(&c->map, c->env, sb->src_size / sb->src_lsize, sb->max_extents);
	c->nops = 0;
	c->ops_lost = false;
	if (rc == 0 && sb->version == COW_VERSION) {
		/* The pages, then the log replayed over them: on the way the map may hold more
		 * extents than it will in the end. */
		c->map.max = UINT64_MAX / 2;
		rc = log_alloc(c);
		c->log_n = 0;
	}
	if (rc == 0)
		rc = v2_load(c, sb, why, whylen);
	if (rc == 0 && sb->version == COW_VERSION) {
		rc = v3_read_log(c, sb, true, why, whylen);
		if (rc == 0)
			rc = map_normalize(&c->map);
		if (rc == 0 && (c->map.n != sb->map_extents || c->map.n > sb->max_extents)) {
			set_why(why, whylen, "the map holds %llu extents with its log replayed, the superblock says %llu (at most %llu)",
				(unsigned long long)c->map.n, (unsigned long long)sb->map_extents,
				(unsigned long long)sb->max_extents);
			rc = -E_CORRUPT;
		}
		c->map.max = sb->max_extents;
	}
	c->map.next_commit = sb->seq + 1;
	if (rc < 0)
		cow_map_free(&c->map);
	return rc;
}

/* Checks one superblock's geometry and the source's identity, then loads its map: version 2's
 * pages, or version 1's checkpoint with the journal replayed. */
static int load_from(struct cow *c, const struct superblock *sb, int which,
		     const struct cow_bdev *src, char *why, size_t whylen)
{
	c->sb = *sb;
	if (sb->version >= COW_V2)
		return load_v2(c, sb, which, src, why, whylen);
	if (sb->src_lsize < 512 || sb->src_lsize > META_BLOCK || sb->src_size % sb->src_lsize ||
	    sb->ckpt_off[0] != 2 * META_BLOCK || sb->ckpt_off[1] != sb->ckpt_off[0] + sb->ckpt_bytes ||
	    sb->journal_off != sb->ckpt_off[1] + sb->ckpt_bytes || sb->data_off < sb->journal_off + sb->journal_bytes ||
	    sb->data_off + sb->src_size > c->dev->size || sb->active_ckpt > 1 || !sb->max_extents ||
	    sb->ckpt_bytes < CKPT_HDR + sb->max_extents * CKPT_REC) {
		set_why(why, whylen, "superblock %c describes an impossible geometry", 'A' + which);
		return -E_CORRUPT;
	}
	if (src) {
		struct superblock now;
		memset(&now, 0, sizeof(now));
		int rc = read_identity(c->env, src, &now);
		if (rc == 0)
			rc = identity_differs(sb, &now, why, whylen);
		if (rc < 0)
			return rc;
	}
	c->lsize = sb->src_lsize;
	cow_map_free(&c->map);
	int rc = cow_map_init(&c->map, c->env, sb->src_size / sb->src_lsize, sb->max_extents);
	if (rc == 0)
		rc = ckpt_load(c, sb->active_ckpt, why, whylen);
	if (rc == 0)
		rc = journal_replay(c);
	/* A crash may have kept a later block of a commit and lost an earlier one; appending after
	 * the replayed records could make those stale records look current. The first commit after
	 * an open therefore starts a new epoch from a checkpoint. */
	c->fresh_epoch = true;
	if (rc < 0)
		cow_map_free(&c->map);
	return rc;
}

/* Superblocks A and B: st[i] is 0 for a valid one at its own place, else why not. */
static void read_superblocks(const struct cow_bdev *cowdev, uint8_t *iobuf, struct superblock sbs[2], int st[2])
{
	for (int i = 0; i < 2; i++) {
		st[i] = cow_bdev_read(cowdev, (uint64_t)i * META_BLOCK, META_BLOCK, iobuf, NULL);
		if (st[i] == 0)
			st[i] = sb_valid(iobuf, &sbs[i]);
		if (st[i] == 0 && sbs[i].self_off != (uint64_t)i * META_BLOCK)
			st[i] = -E_CORRUPT;
	}
}

static void cow_free(struct cow *c);

/* The superblock that did not open is older than the one that did (or it would have been tried
 * first): its pages are the fallback worth keeping. */
static bool attempt_other(const struct superblock sbs[2], int pick)
{
	return sbs[pick ^ 1].seq < sbs[pick].seq;
}

int cow_open(const struct cow_env *env, const struct cow_bdev *cowdev, const struct cow_bdev *src,
	     struct cow **out, char *why, size_t whylen)
{
	struct cow *c = env->alloc(sizeof(*c));
	if (!c)
		return -E_NOMEM;
	memset(c, 0, sizeof(*c));
	c->env = env;
	c->dev = cowdev;
	c->src = src;
	int rc = -E_NOMEM;
	c->iobuf = env->alloc(META_BLOCK);
	c->pending = env->alloc(PENDING_MAX * sizeof(struct jrec));
	if (!c->iobuf || !c->pending)
		goto free_c;

	/* The newest valid superblock wins; the other one's fault is reported if both fail. */
	struct superblock sbs[2];
	int st[2];
	read_superblocks(cowdev, c->iobuf, sbs, st);
	if (st[0] < 0 && st[1] < 0) {
		rc = st[0] == -E_FOREIGN && st[1] == -E_FOREIGN ? -E_FOREIGN :
		     st[0] == -E_VERSION || st[1] == -E_VERSION ? -E_VERSION : -E_CORRUPT;
		set_why(why, whylen, "no valid superblock (A: %s, B: %s)", err_str(st[0]), err_str(st[1]));
		goto free_c;
	}
	int pick = st[0] < 0 ? 1 : st[1] < 0 ? 0 : sbs[1].seq > sbs[0].seq;
	/* The newest superblock first; if its metadata cannot be loaded, the older one (its
	 * checkpoint is the previous one, so it describes an older but consistent state). */
	for (int attempt = 0; attempt < 2; attempt++, pick ^= 1) {
		if (st[pick] < 0)
			continue;
		rc = load_from(c, &sbs[pick], pick, src, why, whylen);
		if (rc == 0 || rc == -E_IDENTITY || rc == -E_NOMEM)
			break;
	}
	if (rc < 0)
		goto free_c;
	if (c->sb.version >= COW_V2 && st[pick ^ 1] == 0 && attempt_other(sbs, pick))
		v2_protect_other(c, &sbs[pick ^ 1]);
	*out = c;
	return 0;

free_c:
	cow_free(c);
	return rc;
}

static void cow_free(struct cow *c)
{
	cow_map_free(&c->map);
	log_free(c);
	if (c->pending)
		c->env->free(c->pending);
	if (c->iobuf)
		c->env->free(c->iobuf);
	if (c->busy)
		c->env->free(c->busy);
	if (c->freed_prev)
		c->env->free(c->freed_prev);
	c->env->free(c);
}

/* ---- check: every structure on its own, and what can be salvaged --------------------------- */

static void sayf(void (*say)(void *, const char *), void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void sayf(void (*say)(void *, const char *), void *ctx, const char *fmt, ...)
{
	char line[320];
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	say(ctx, line);
}

static void say_map(struct cow *c, void (*say)(void *, const char *), void *ctx, const char *what)
{
	struct cow_totals t;
	cow_map_totals(&c->map, &t);
	sayf(say, ctx, "%s: %llu extents; sectors finished %llu, bad %llu, non-tried %llu, written %llu",
	     what, (unsigned long long)c->map.n, (unsigned long long)t.sectors[4], (unsigned long long)t.sectors[3],
	     (unsigned long long)t.sectors[0], (unsigned long long)t.written);
}

/* Salvage: what is known of each sector when no map loads. `val` holds the states and written
 * flags the intact pages and changes give; `unk` marks what nothing gives: state '-' where the
 * state is unknown, written set where the written flag is. The pages' extents are gathered
 * packed (`ent`, as in a page; the source's end closes the last) and loaded at once. */
struct salvage {
	struct cow_map *val, unk;
	uint64_t sectors;
	uint64_t *ent, nent, capent;
};

static int salvage_push(struct salvage *v, const struct cow_env *env, uint64_t e)
{
	if (v->nent == v->capent) {
		uint64_t cap = v->capent ? v->capent * 2 : 4096;
		uint64_t *t = env->alloc(cap * sizeof(*t));
		if (!t)
			return -E_NOMEM;
		if (v->nent)
			memcpy(t, v->ent, v->nent * sizeof(*t));
		if (v->ent)
			env->free(v->ent);
		v->ent = t;
		v->capent = cap;
	}
	v->ent[v->nent++] = e;
	return 0;
}

static void salvage_get(void *ctx, uint64_t i, struct cow_extent *x)
{
	const struct salvage *v = ctx;
	uint64_t e = v->ent[i], end = i + 1 < v->nent ? ENT_START(v->ent[i + 1]) : v->sectors;
	*x = (struct cow_extent){ ENT_START(e), end - ENT_START(e), map_state_char(e & 7), (uint8_t)(e >> 3 & 1) };
}

/* Sb's log over the salvaged pages: each log page that is intact (its checksum, the one its
 * index names, its place) and consistent (its commit in sequence, every change inside the source
 * with valid codes) is replayed in order; a change sets fields, so one that sets a field makes it
 * known whatever the page under it said. Damaged pages are skipped and named. */
static int v3_salvage_log(struct cow *c, const struct superblock *sb, struct salvage *v,
			  void (*say)(void *, const char *), void *ctx)
{
	if (sb->version != COW_VERSION || sb->log_slot == SLOT_NONE)
		return 0;
	char why[200] = "";
	uint32_t ls = sb->log_slot;
	struct map_idx_page *ix = c->env->alloc(2 * MAP_PAGE);
	if (!ix)
		return -E_NOMEM;
	struct map_log_page *lp = (struct map_log_page *)(ix + 1);
	int rc = -E_CORRUPT;
	if (ls >= sb->page_slots || slot_busy(c, ls))
		fmt_snprintf(why, sizeof(why), "the superblock names it at slot %u, %s", ls,
			     ls >= sb->page_slots ? "outside the metadata area" : "which a map page uses too");
	else if ((rc = cow_bdev_read(c->dev, slot_byte(c, ls), MAP_PAGE, ix, NULL)) < 0)
		fmt_snprintf(why, sizeof(why), "the log's index page at slot %u is unreadable: %s", ls, err_str(rc));
	else
		rc = page_check(c, ix, PAGE_LOGIX, ls, sb->log_crc, LOG_PAGES_MAX, "the log's index page", why, sizeof(why));
	if (rc < 0) {
		sayf(say, ctx, "the log (%llu changes) cannot be applied: %s; a sector a change of the last commits set "
		     "may be counted as it was before", (unsigned long long)sb->log_recs, why);
		c->env->free(ix);
		return 0;
	}
	slot_mark(c, ls);
	uint64_t applied = 0, gen = 0;
	uint32_t good = 0, named = 0;
	for (uint32_t i = 0; i < ix->h.n; i++) {
		uint32_t s = ix->e[i].slot;
		why[0] = '\0';
		rc = -E_CORRUPT;
		if (s >= sb->page_slots || slot_busy(c, s))
			fmt_snprintf(why, sizeof(why), "log page %u: the index names slot %u, %s", i, s,
				     s >= sb->page_slots ? "outside the metadata area" : "which another page uses (a loop or a shared page)");
		else if ((rc = cow_bdev_read(c->dev, slot_byte(c, s), MAP_PAGE, lp, NULL)) < 0)
			fmt_snprintf(why, sizeof(why), "log page %u at slot %u is unreadable: %s", i, s, err_str(rc));
		else if ((rc = page_check(c, lp, PAGE_LOG, s, ix->e[i].crc, LOG_MAX, "log page", why, sizeof(why))) == 0 &&
			 (lp->h.gen < gen || lp->h.gen > sb->seq || lp->h.first > lp->h.gen)) {
			fmt_snprintf(why, sizeof(why), "log page at slot %u was written by commit %llu, out of sequence", s,
				     (unsigned long long)lp->h.gen);
			rc = -E_CORRUPT;
		}
		for (uint32_t j = 0; rc == 0 && j < lp->h.n; j++) {
			uint64_t st = lp->r[j].start, cnt = lp->r[j].count_flags >> 8;
			unsigned sc = lp->r[j].count_flags & 15, wc = (lp->r[j].count_flags >> 4) & 15;
			if (st >= v->sectors || !cnt || cnt > v->sectors - st || sc > 5 || wc > 2) {
				fmt_snprintf(why, sizeof(why), "log page at slot %u, record %u: a change of sectors %llu+%llu that "
					     "cannot be", s, j, (unsigned long long)st, (unsigned long long)cnt);
				rc = -E_CORRUPT;
			}
		}
		if (rc < 0) {
			if (named++ < 20)
				sayf(say, ctx, "%s: its changes are not applied", why);
			continue;
		}
		slot_mark(c, s);
		gen = lp->h.gen;
		good++;
		for (uint32_t j = 0; j < lp->h.n; j++) {
			uint64_t st = lp->r[j].start, cnt = lp->r[j].count_flags >> 8;
			unsigned sc = lp->r[j].count_flags & 15, wc = (lp->r[j].count_flags >> 4) & 15;
			rc = cow_map_set(v->val, st, cnt, sc ? map_state_char(sc - 1) : 0, wc ? (int)wc - 1 : -1);
			if (rc == 0)
				rc = cow_map_set(&v->unk, st, cnt, sc ? COW_NONTRIED : 0, wc ? 0 : -1);
			if (rc < 0) {
				c->env->free(ix);
				return rc;
			}
		}
		applied += lp->h.n;
	}
	if (good == ix->h.n)
		sayf(say, ctx, "the log: all %u pages intact, their %llu changes applied", good, (unsigned long long)applied);
	else
		sayf(say, ctx, "the log: %u of %u pages intact, their %llu changes applied; the %llu changes of the others "
		     "are not: a sector one of them set last may be counted as it was before it", good, ix->h.n,
		     (unsigned long long)applied,
		     (unsigned long long)(sb->log_recs > applied ? sb->log_recs - applied : 0));
	c->env->free(ix);
	return 0;
}

/* No map loads whole: each map page of sb's tree on its own, then its log's intact changes over
 * them. The damaged pages are named with the sectors they covered (between their intact
 * neighbours), and the sectors whose state nothing gives afterwards; what the rest calls
 * finished or written can still be taken from the data area. */
static void v2_salvage(struct cow *c, const struct superblock *sb, void (*say)(void *, const char *), void *ctx)
{
	char why[200] = "";
	if (!v2_geometry_ok(c, sb)) {
		sayf(say, ctx, "no map loads, and the newest superblock's layout is impossible: nothing to salvage from it");
		return;
	}
	c->sb = *sb;
	struct v2_tree t;
	int rc = busy_init(c);
	if (rc == 0)
		rc = v2_read_tree(c, sb, &t, why, sizeof(why));
	if (rc < 0) {
		sayf(say, ctx, "no map loads, and its pages cannot be found from the newest root: %s; the data area at "
		     "byte %llu is still a raw image of the source", why[0] ? why : err_str(rc),
		     (unsigned long long)sb->data_off);
		return;
	}
	struct salvage v = { .val = &c->map, .sectors = sb->src_size / sb->src_lsize };
	struct cow_map_chunk *p = c->env->alloc(sizeof(*p));
	cow_map_free(&c->map);
	rc = p ? cow_map_init(&c->map, c->env, v.sectors, UINT64_MAX / 2) : -E_NOMEM;
	if (rc == 0 && (rc = cow_map_init(&v.unk, c->env, v.sectors, UINT64_MAX / 2)) < 0)
		cow_map_free(&c->map);
	if (rc < 0) {
		sayf(say, ctx, "no map loads, and salvaging it failed: %s", err_str(rc));
		if (p)
			c->env->free(p);
		tree_free(c->env, &t);
		return;
	}
	uint64_t sectors = v.sectors, good = 0, named = 0, lost = 0, lost_from = 0, prev_last = 0;
	bool in_lost = false, have_prev = false;
	for (uint64_t i = 0; i <= t.nl && rc >= 0; i++) {
		bool ok = false;
		if (i < t.nl) {
			why[0] = '\0';
			rc = cow_bdev_read(c->dev, slot_byte(c, t.lslot[i]), MAP_PAGE, p, NULL);
			if (rc < 0)
				fmt_snprintf(why, sizeof(why), "map page at slot %u (byte %llu) is unreadable", t.lslot[i],
					     (unsigned long long)slot_byte(c, t.lslot[i]));
			else
				rc = page_check(c, p, PAGE_LEAF, t.lslot[i], t.lcrc[i], CHUNK_MAX, "map page", why, sizeof(why));
			ok = rc == 0;
			for (uint32_t j = 0; ok && j < p->h.n; j++) {
				uint64_t st = ENT_START(p->e[j]);
				ok = (p->e[j] & 7) <= 4 && st < sectors && (!j || st > ENT_START(p->e[j - 1])) &&
				     (!have_prev || st > prev_last) && (have_prev || in_lost || j || st == 0);
			}
			if (rc == 0 && !ok)
				fmt_snprintf(why, sizeof(why), "map page at slot %u (byte %llu): its extents are out of order",
					     t.lslot[i], (unsigned long long)slot_byte(c, t.lslot[i]));
			rc = 0;
		}
		/* A lost stretch ends where the next intact page starts. */
		uint64_t first = i < t.nl && ok ? ENT_START(p->e[0]) : sectors;
		if (in_lost && (ok || i == t.nl)) {
			if (named <= 20)
				sayf(say, ctx, "  the map of sectors %llu to %llu is lost with it", (unsigned long long)lost_from,
				     (unsigned long long)first);
			lost += first - lost_from;
			rc = cow_map_set(&v.unk, lost_from, first - lost_from, COW_BAD, 1);
			in_lost = false;
		}
		if (i == t.nl || rc < 0)
			break;
		if (!ok) {
			if (named++ < 20)
				sayf(say, ctx, "%s", why);
			if (!in_lost) {
				/* The last extent before it ends somewhere in the lost stretch. */
				lost_from = have_prev ? prev_last : 0;
				if (have_prev)
					v.nent--;
				rc = salvage_push(&v, c->env, ENT(lost_from, 0, 0));
			}
			in_lost = true;
			continue;
		}
		good++;
		for (uint32_t j = 0; j < p->h.n && rc == 0; j++)
			rc = salvage_push(&v, c->env, p->e[j]);
		prev_last = ENT_START(p->e[p->h.n - 1]);
		have_prev = true;
	}
	if (rc == 0)
		rc = cow_map_load(&c->map, v.nent, salvage_get, &v);
	if (rc == 0)
		rc = v3_salvage_log(c, sb, &v, say, ctx);
	/* The totals of what is known: the whole map's, less what lies where the state (or the
	 * written flag) is unknown. */
	struct cow_totals tot;
	uint64_t unk_state = 0, unk_ranges = 0;
	if (rc == 0)
		cow_map_totals(&c->map, &tot);
	for (const struct cow_extent *x = rc == 0 ? cow_map_get(&v.unk, 0) : NULL; x; x = cow_map_next(&v.unk, x)) {
		if (x->state != COW_BAD && !x->written)
			continue;
		uint64_t xs = x->start, xe = x->start + x->count;
		bool st = x->state == COW_BAD, w = x->written;
		if (st && unk_ranges++ < 20)
			sayf(say, ctx, "  still unknown: the state of sectors %llu to %llu", (unsigned long long)xs,
			     (unsigned long long)xe);
		unk_state += st ? x->count : 0;
		for (uint64_t s = xs; s < xe;) {
			const struct cow_extent *a = cow_map_at(&c->map, s);
			uint64_t e = a->start + a->count < xe ? a->start + a->count : xe;
			if (st)
				tot.sectors[cow_state_index(a->state)] -= e - s;
			if (w && a->written)
				tot.written -= e - s;
			s = e;
		}
	}
	const char *with = sb->version == COW_VERSION && sb->log_slot != SLOT_NONE ? "with the log applied, " : "";
	if (rc < 0)
		sayf(say, ctx, "salvaging the map failed: %s", err_str(rc));
	else if (lost)
		sayf(say, ctx, "%sthe state of %llu of the %llu sectors lost with damaged pages is still unknown, in %llu "
		     "range%s", with, (unsigned long long)unk_state, (unsigned long long)lost, (unsigned long long)unk_ranges,
		     unk_ranges == 1 ? "" : "s");
	if (rc == 0)
		sayf(say, ctx, "%llu of %llu map pages are intact; %sthey call %llu sectors finished, %llu bad, %llu non-tried "
		     "and %llu written: that data can still be recovered from the data area at byte %llu",
		     (unsigned long long)good, (unsigned long long)t.nl, with, (unsigned long long)tot.sectors[4],
		     (unsigned long long)tot.sectors[3], (unsigned long long)tot.sectors[0], (unsigned long long)tot.written,
		     (unsigned long long)sb->data_off);
	cow_map_free(&v.unk);
	cow_map_free(&c->map);
	if (v.ent)
		c->env->free(v.ent);
	c->env->free(p);
	tree_free(c->env, &t);
}

/* Both superblocks lost: the newest valid map root in the page area gives the layout (its
 * header holds the source's size) and its map says what the data area holds. 0 if one was found. */
static int salvage_v2(struct cow *c, void (*say)(void *, const char *), void *ctx)
{
	struct superblock g;
	memset(&g, 0, sizeof(g));
	g.page_off = 2 * META_BLOCK;
	struct map_page_hdr best = { 0 };
	uint64_t best_slot = 0;
	uint8_t *pg = c->env->alloc(MAP_PAGE);
	if (!pg)
		return -E_NOMEM;
	uint64_t limit = v2_slots_for(EXTENTS_MAX);
	for (uint64_t s = 0; s < limit && g.page_off + (s + 1) * MAP_PAGE <= c->dev->size; s++) {
		if (cow_bdev_read(c->dev, g.page_off + s * MAP_PAGE, MAP_PAGE, pg, NULL) < 0)
			continue;
		struct map_page_hdr h;
		memcpy(&h, pg, sizeof(h));
		if (h.magic != PAGE_ROOT || h.crc != map_page_crc(pg) || h.slot != s || !h.first || h.gen <= best.gen)
			continue;
		best = h;
		best_slot = s;
	}
	c->env->free(pg);
	if (!best.gen)
		return -E_NOENT;
	v2_layout(&g, best.first);
	g.version = COW_VERSION;
	g.log_slot = SLOT_NONE;   /* (the pages alone: without a superblock the log is not known) */
	g.src_lsize = 512;   /* unknown without a superblock; the map counts sectors either way */
	g.src_size = best.first;
	g.root_slot = best_slot;
	g.root_crc = best.crc;
	g.map_extents = UINT64_MAX;
	sayf(say, ctx, "no valid superblock: the newest map root (slot %llu, commit %llu) gives the layout "
	     "(source %llu bytes, data area at byte %llu)", (unsigned long long)best_slot,
	     (unsigned long long)best.gen, (unsigned long long)g.src_size, (unsigned long long)g.data_off);
	c->sb = g;
	cow_map_free(&c->map);
	char why[200] = "";
	int rc = cow_map_init(&c->map, c->env, g.src_size / 512, g.max_extents);
	if (rc == 0)
		rc = v2_load(c, &g, why, sizeof(why));
	if (rc < 0) {
		sayf(say, ctx, "its map cannot be loaded: %s", why[0] ? why : err_str(rc));
		return 0;
	}
	say_map(c, say, ctx, "its map");
	sayf(say, ctx, "nothing opens, but that map of the data area at byte %llu is consistent: the data it calls "
	     "finished or written there can still be recovered", (unsigned long long)g.data_off);
	return 0;
}

int cow_inspect(const struct cow_env *env, const struct cow_bdev *cowdev,
		void (*say)(void *ctx, const char *line), void *ctx)
{
	struct cow *c = env->alloc(sizeof(*c));
	if (!c)
		return -E_NOMEM;
	memset(c, 0, sizeof(*c));
	c->env = env;
	c->dev = cowdev;
	int rc = -E_NOMEM;
	c->iobuf = env->alloc(META_BLOCK);
	if (!c->iobuf)
		goto free_c;
	char why[200], what[160];
	struct superblock sbs[2];
	int st[2];
	read_superblocks(cowdev, c->iobuf, sbs, st);
	for (int i = 0; i < 2; i++) {
		if (st[i] == 0)
			if (sbs[i].version >= COW_V2)
				sayf(say, ctx, "superblock %c (byte %u): valid, version %u, sequence %llu, %llu extents in %llu pages%s",
				     'A' + i, i * META_BLOCK, sbs[i].version, (unsigned long long)sbs[i].seq,
				     (unsigned long long)sbs[i].map_extents, (unsigned long long)sbs[i].map_pages,
				     sbs[i].version == COW_VERSION && sbs[i].log_slot != SLOT_NONE ? " and a log" : "");
			else
				sayf(say, ctx, "superblock %c (byte %u): valid, version 1, sequence %llu, journal epoch %llu, checkpoint slot %u",
				     'A' + i, i * META_BLOCK, (unsigned long long)sbs[i].seq,
				     (unsigned long long)sbs[i].journal_epoch, sbs[i].active_ckpt);
		else
			sayf(say, ctx, "superblock %c (byte %u): not usable: %s", 'A' + i, i * META_BLOCK, err_str(st[i]));
	}
	int newest = st[0] < 0 ? (st[1] < 0 ? -1 : 1) : st[1] < 0 ? 0 : sbs[1].seq > sbs[0].seq;
	/* Each valid superblock as cow_open would use it: geometry, checkpoint, journal. */
	int opens = -1;
	for (int k = 0, i = newest; newest >= 0 && k < 2; k++, i ^= 1) {
		if (st[i] < 0)
			continue;
		why[0] = '\0';
		rc = load_from(c, &sbs[i], i, NULL, why, sizeof(why));
		if (rc == -E_NOMEM)
			goto free_c;
		if (rc < 0) {
			sayf(say, ctx, "superblock %c's state cannot be loaded: %s", 'A' + i, why[0] ? why : err_str(rc));
			continue;
		}
		if (sbs[i].version >= COW_V2)
			fmt_snprintf(what, sizeof(what), "%s superblock %c opens (map root at slot %llu, byte %llu; %llu pages; log of %llu changes)",
				     i == newest ? "the newest" : "the older", 'A' + i, (unsigned long long)sbs[i].root_slot,
				     (unsigned long long)(sbs[i].page_off + sbs[i].root_slot * MAP_PAGE),
				     (unsigned long long)c->map.nchunks,
				     (unsigned long long)(sbs[i].version == COW_VERSION ? sbs[i].log_recs : 0));
		else
			fmt_snprintf(what, sizeof(what), "%s superblock %c opens (version 1: checkpoint %u + %llu journal records)",
				     i == newest ? "the newest" : "the older", 'A' + i, sbs[i].active_ckpt,
				     (unsigned long long)c->jnext);
		say_map(c, say, ctx, what);
		if (opens < 0)
			opens = i;
		cow_map_free(&c->map);
	}
	if (newest >= 0 && sbs[newest].version >= COW_V2) {
		/* Versions 2 and 3: each superblock's map was checked page by page above. */
		struct superblock *g2 = &sbs[newest];
		sayf(say, ctx, "page area: %llu slots of %u bytes at byte %llu; data area at byte %llu",
		     (unsigned long long)g2->page_slots, MAP_PAGE, (unsigned long long)g2->page_off,
		     (unsigned long long)g2->data_off);
		if (opens >= 0 && opens != newest)
			sayf(say, ctx, "the newest superblock's map is damaged: the cow opens from the older one, "
			     "without the changes of its last commit");
		else if (opens < 0)
			v2_salvage(c, g2, say, ctx);
		rc = opens >= 0 && opens == newest ? 0 : 1;
		goto free_c;
	}
	if (newest < 0 && salvage_v2(c, say, ctx) == 0) {
		rc = 1;
		goto free_c;
	}
	/* The checkpoint slots, found through the newest superblock or, with none left, through a
	 * checkpoint header in either slot: the layout follows from the source's size, and the
	 * second slot's place depends on it, so each place it can have is tried. */
	struct superblock g;
	memset(&g, 0, sizeof(g));
	bool have = false;
	if (newest >= 0) {
		g = sbs[newest];
		/* Only a sane layout is followed (a superblock can be valid and describe nonsense). */
		have = g.src_lsize >= 512 && g.src_lsize <= META_BLOCK && !(g.src_size % g.src_lsize) &&
		       g.ckpt_off[0] == 2 * META_BLOCK && g.ckpt_off[1] == g.ckpt_off[0] + g.ckpt_bytes &&
		       g.max_extents && g.max_extents <= g.ckpt_bytes / CKPT_REC &&
		       g.ckpt_bytes >= CKPT_HDR + g.max_extents * CKPT_REC;
	}
	uint64_t cb_lo = align_up(CKPT_HDR + 1024 * CKPT_REC, META_BLOCK);
	uint64_t cb_hi = align_up(CKPT_HDR + (1u << 20) * CKPT_REC, META_BLOCK);
	for (uint64_t cb = 0; !have && cb <= cb_hi; cb = cb ? cb + META_BLOCK : cb_lo) {
		uint64_t off = 2 * META_BLOCK + cb;
		struct ckpt_header h;
		if (off + META_BLOCK > cowdev->size || cow_bdev_read(cowdev, off, META_BLOCK, c->iobuf, NULL) < 0)
			continue;
		memcpy(&h, c->iobuf, sizeof(h));
		if (memcmp(h.magic, CK_MAGIC, 8) || h.hdr_crc != crc32c(0, &h, offsetof(struct ckpt_header, hdr_crc)) ||
		    !h.sectors)
			continue;
		layout(&g, h.sectors);
		if (g.ckpt_off[cb ? 1 : 0] != off)
			continue;
		g.src_lsize = 512;   /* unknown without a superblock; the map counts sectors either way */
		g.src_size = h.sectors * 512;
		have = true;
		sayf(say, ctx, "no valid superblock: the checkpoint header at byte %llu gives the layout "
		     "(%llu source sectors, data area at byte %llu)", (unsigned long long)off,
		     (unsigned long long)h.sectors, (unsigned long long)g.data_off);
	}
	if (!have)
		sayf(say, ctx, "no valid superblock, and no checkpoint header where one could be");
	int good_slot = -1;
	uint64_t good_epoch = 0;
	for (uint32_t slot = 0; have && slot < 2; slot++) {
		rc = cow_bdev_read(cowdev, g.ckpt_off[slot], META_BLOCK, c->iobuf, NULL);
		struct ckpt_header h;
		memcpy(&h, c->iobuf, sizeof(h));
		if (rc < 0 || memcmp(h.magic, CK_MAGIC, 8) ||
		    h.hdr_crc != crc32c(0, &h, offsetof(struct ckpt_header, hdr_crc))) {
			sayf(say, ctx, "checkpoint slot %u (byte %llu): no valid checkpoint (%s)", slot,
			     (unsigned long long)g.ckpt_off[slot], rc < 0 ? err_str(rc) : "header");
			continue;
		}
		c->sb = g;
		c->sb.journal_epoch = h.epoch;
		cow_map_free(&c->map);
		rc = cow_map_init(&c->map, env, g.src_size / g.src_lsize, g.max_extents);
		why[0] = '\0';
		if (rc == 0)
			rc = ckpt_load(c, slot, why, sizeof(why));
		if (rc == -E_NOMEM)
			goto free_c;
		if (rc < 0) {
			sayf(say, ctx, "checkpoint slot %u (byte %llu, epoch %llu): %s", slot,
			     (unsigned long long)g.ckpt_off[slot], (unsigned long long)h.epoch, why[0] ? why : err_str(rc));
			continue;
		}
		fmt_snprintf(what, sizeof(what), "checkpoint slot %u (byte %llu, epoch %llu) is consistent", slot,
			     (unsigned long long)g.ckpt_off[slot], (unsigned long long)h.epoch);
		say_map(c, say, ctx, what);
		if (good_slot < 0 || h.epoch > good_epoch) {
			good_slot = (int)slot;
			good_epoch = h.epoch;
		}
	}
	cow_map_free(&c->map);
	if (opens >= 0 && opens != newest)
		sayf(say, ctx, "the newest superblock's state is lost: the cow opens from the older one, "
		     "without the changes of its last commit");
	else if (opens < 0 && good_slot >= 0)
		sayf(say, ctx, "nothing opens, but checkpoint slot %d holds a consistent map of the data area "
		     "at byte %llu: the data the map calls finished or written there can still be recovered",
		     good_slot, (unsigned long long)g.data_off);
	else if (opens < 0)
		sayf(say, ctx, "nothing to salvage from the metadata: no superblock loads and no checkpoint is valid");
	rc = opens >= 0 && opens == newest ? 0 : 1;

free_c:
	cow_free(c);
	return rc;
}

static int sb_write(struct cow *c)
{
	c->sb.seq++;
	c->sb.self_off = (c->sb.seq & 1) ? META_BLOCK : 0;   /* alternate A and B */
	c->sb.ctr[5]++;
	c->sb.ctr[6] = c->env->now_us();
	sb_seal(&c->sb, c->iobuf);
	int rc = cow_bdev_write(c->dev, c->sb.self_off, META_BLOCK, c->iobuf);
	return rc < 0 ? rc : cow_bdev_flush(c->dev);
}

int cow_sync(struct cow *c)
{
	int rc = cow_store_end(c);
	if (rc < 0)
		return rc;
	rc = cow_bdev_flush(c->dev);   /* 1. the data the records describe */
	if (rc < 0)
		return rc;
	if (paged(c)) {
		/* 2. The changed pages (and the log) into free slots, flushed; 3. the superblock naming them. */
		uint32_t *freed = NULL;
		uint64_t nfreed = 0, cap = 0;
		rc = v2_write_pages(c, &freed, &nfreed, &cap);
		if (rc == 0)
			rc = sb_write(c);
		if (rc < 0) {
			/* The superblock may or may not have landed: what it replaced stays busy. */
			if (freed)
				c->env->free(freed);
			return rc;
		}
		v2_committed(c, freed, nfreed, cap);
		c->map.next_commit = c->sb.seq + 1;
		return 0;
	}
	uint64_t per = META_BLOCK / JREC;
	uint64_t need_blocks = (c->npending + per - 1) / per;
	if (c->fresh_epoch || (c->jblocks + need_blocks) * META_BLOCK > c->sb.journal_bytes) {
		/* 2'. The journal is full: a checkpoint of the whole map in the other slot, a new epoch. */
		uint32_t slot = c->sb.active_ckpt ^ 1;
		uint64_t epoch = c->sb.journal_epoch + 1;
		rc = ckpt_write(c, slot, epoch);
		if (rc == 0)
			rc = cow_bdev_flush(c->dev);
		if (rc < 0)
			return rc;
		c->sb.active_ckpt = slot;
		c->sb.journal_epoch = epoch;
		c->jnext = 0;
		c->jblocks = 0;
		c->npending = 0;
		c->fresh_epoch = false;
		return sb_write(c);
	}
	/* 2. The records, each commit from a fresh block so no committed record is rewritten. */
	for (uint32_t i = 0; i < c->npending; i += (uint32_t)per) {
		memset(c->iobuf, 0, META_BLOCK);
		for (uint32_t k = 0; k < per && i + k < c->npending; k++) {
			struct jrec *r = &c->pending[i + k];
			r->epoch = c->sb.journal_epoch;
			r->index = c->jnext + i + k;
			r->crc = jrec_crc(r);
			memcpy(c->iobuf + k * JREC, r, JREC);
		}
		rc = cow_bdev_write(c->dev, c->sb.journal_off + (c->jblocks + i / per) * META_BLOCK, META_BLOCK, c->iobuf);
		if (rc < 0)
			return rc;
	}
	if (c->npending && (rc = cow_bdev_flush(c->dev)) < 0)
		return rc;
	/* Zeroed padding fills each commit's last block; the replay skips it. */
	c->jnext += c->npending;
	c->jblocks += need_blocks;
	c->npending = 0;
	return sb_write(c);   /* 3. counters and sequence */
}

void cow_discard(struct cow *c)
{
	if (c->storing)   /* its buffers are the devices' until then; nothing is recorded */
		cow_batch_wait(&c->store, NULL);
	cow_free(c);
}

int cow_close(struct cow *c)
{
	int rc = cow_sync(c);
	cow_free(c);
	return rc;
}

/* ---- map changes, queued for the next commit ----------------------------------------------- */

static int record(struct cow *c, uint64_t start, uint64_t count, uint8_t state, int written)
{
	if (paged(c)) {
		int rc = cow_map_set(&c->map, start, count, state, written);   /* its pages are marked */
		if (rc == 0 && logged(c))
			log_op(c, start, count, state, written);
		return rc;
	}
	if (c->npending == PENDING_MAX) {
		int rc = cow_sync(c);
		if (rc < 0)
			return rc;
	}
	int rc = cow_map_set(&c->map, start, count, state, written);
	if (rc < 0)
		return rc;
	struct jrec *r = &c->pending[c->npending++];
	memset(r, 0, sizeof(*r));
	r->magic = J_MAGIC;
	r->start = start;
	r->count = count;
	r->state = state;
	r->written = (int8_t)written;
	return 0;
}

static int check_range(const struct cow *c, uint64_t off, uint64_t len)
{
	if (off % c->lsize || len % c->lsize)
		return -E_ALIGN;
	if (off > c->sb.src_size || len > c->sb.src_size - off)
		return -E_RANGE;
	return 0;
}

/* Runs of sectors [s, e) that are either all present in the cow or all absent. */
static uint64_t run_end(const struct cow *c, uint64_t s, uint64_t e, bool *present)
{
	const struct cow_extent *x = cow_map_at(&c->map, s);
	*present = x->written || x->state == COW_FINISHED;
	uint64_t end = x->start + x->count;
	while (end < e && (x = cow_map_next(&c->map, x)) && (x->written || x->state == COW_FINISHED) == *present)
		end = x->start + x->count;
	return end < e ? end : e;
}

int cow_ov_read(struct cow *c, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off)
{
	int rc = cow_store_end(c);
	if (rc == 0)
		rc = check_range(c, off, len);
	if (rc < 0)
		return rc;
	uint64_t s = off / c->lsize, e = (off + len) / c->lsize;
	uint8_t *p = buf;
	/* The pieces, from the cow and from the source, are read at once. */
	struct cow_batch b;
	cow_batch_init(&b);
	while (s < e) {
		bool present;
		uint64_t r = run_end(c, s, e, &present);
		uint64_t bytes = (r - s) * c->lsize;
		if (!present && !c->src) {
			rc = -E_NOENT;   /* no source bound: only the cow's own data can be read */
			if (bad_off)
				*bad_off = s * c->lsize;
			break;
		}
		for (uint64_t done = 0; done < bytes;) {
			uint32_t n = bytes - done < (1u << 30) ? (uint32_t)(bytes - done) : (1u << 30);
			uint64_t at = s * c->lsize + done;
			c->sb.ctr[present ? 1 : 0]++;
			if (present)
				cow_batch_add(&b, c->dev, COW_IO_READ, c->sb.data_off + at, n, p + done);
			else
				cow_batch_add(&b, c->src, COW_IO_READ, at, n, p + done);
			done += n;
		}
		p += bytes;
		s = r;
	}
	/* An earlier piece's failure is the one to report, even past a missing source. */
	uint64_t bad;
	int brc = cow_batch_wait(&b, &bad);
	if (brc < 0 && bad_off)   /* the cow's failures too are named by overlay offset */
		*bad_off = b.failed == c->dev ? bad - c->sb.data_off : bad;
	return brc < 0 ? brc : rc;
}

int cow_ov_read_rescuing(struct cow *c, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off)
{
	int rc = cow_ov_read(c, off, len, buf, bad_off);
	if (rc < 0)
		return rc;
	/* What came from the source is stored, run by run, as a rescue would store it. */
	uint64_t s = off / c->lsize, e = (off + len) / c->lsize;
	while (s < e && c->src) {
		bool present;
		uint64_t r = run_end(c, s, e, &present);
		for (uint64_t p = s; !present && p < r; p += 1u << 18) {
			uint64_t n = r - p < (1u << 18) ? r - p : (1u << 18);   /* 1 GiB pieces at most */
			rc = cow_store_rescued(c, p * c->lsize, n * c->lsize, (uint8_t *)buf + (p * c->lsize - off));
			if (rc < 0)
				return rc;
		}
		s = r;
	}
	return 0;
}

int cow_ov_write(struct cow *c, uint64_t off, uint64_t len, const void *buf)
{
	int rc = cow_store_end(c);   /* a rescued write landing after ours would undo it */
	if (rc == 0)
		rc = check_range(c, off, len);
	if (rc < 0)
		return rc;
	uint64_t s = off / c->lsize, n = len / c->lsize;
	/* Sectors whose cow copy is the source's ('+', not written) are first recorded as written
	 * and committed: that copy stays valid until the new data lands, so a crash in between
	 * reads either the old or the new data, and never makes a '+' sector differ from the source. */
	bool intent = false;
	for (const struct cow_extent *x = cow_map_at(&c->map, s); x && x->start < s + n; x = cow_map_next(&c->map, x))
		if (x->state == COW_FINISHED && !x->written)
			intent = true;
	if (intent) {
		for (uint64_t p = s; p < s + n;) {
			const struct cow_extent x = *cow_map_at(&c->map, p);
			uint64_t b = x.start + x.count < s + n ? x.start + x.count : s + n;
			if (x.state == COW_FINISHED && !x.written && (rc = record(c, p, b - p, 0, 1)) < 0)
				return rc;
			p = b;   /* by sector: the map was re-split */
		}
		rc = cow_sync(c);
		if (rc < 0)
			return rc;
	}
	const uint8_t *p = buf;
	struct cow_batch b;
	cow_batch_init(&b);
	for (uint64_t done = 0; done < len;) {
		uint32_t k = len - done < (1u << 30) ? (uint32_t)(len - done) : (1u << 30);
		c->sb.ctr[2]++;
		cow_batch_add(&b, c->dev, COW_IO_WRITE, c->sb.data_off + off + done, k, p + done);
		done += k;
	}
	rc = cow_batch_wait(&b, NULL);
	if (rc < 0)
		return rc;
	return record(c, s, n, 0, 1);
}

int64_t cow_ov_claim(struct cow *c, uint64_t off, uint64_t len)
{
	int rc = cow_store_end(c);
	if (rc == 0)
		rc = check_range(c, off, len);
	if (rc < 0)
		return rc;
	uint64_t s = off / c->lsize, e = (off + len) / c->lsize, claimed = 0;
	for (uint64_t p = s; p < e;) {
		const struct cow_extent x = *cow_map_at(&c->map, p);
		uint64_t b = x.start + x.count < e ? x.start + x.count : e;
		if (x.state == COW_FINISHED && !x.written) {
			if ((rc = record(c, p, b - p, 0, 1)) < 0)
				return rc;
			claimed += b - p;
		}
		p = b;   /* by sector: the map was re-split */
	}
	return (int64_t)claimed;
}

int cow_read_source(struct cow *c, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off)
{
	int rc = check_range(c, off, len);
	if (rc < 0)
		return rc;
	if (!c->src)
		return -E_NOENT;
	if (len > (1u << 30))
		return -E_RANGE;   /* one source command: callers read in clusters */
	c->sb.ctr[0]++;
	return cow_bdev_read(c->src, off, (uint32_t)len, buf, bad_off);
}

int cow_rescue_read(struct cow *c, uint64_t off, uint64_t len, void *buf, uint64_t *bad_off)
{
	int rc = cow_store_end(c);
	if (rc == 0)
		rc = cow_read_source(c, off, len, buf, bad_off);
	return rc < 0 ? rc : cow_store_rescued(c, off, len, buf);
}

/* Sectors of [s, e) not in `state`: what a change to it newly counts. */
static uint64_t sectors_not_in(const struct cow *c, uint64_t s, uint64_t e, uint8_t state)
{
	uint64_t n = 0;
	for (const struct cow_extent *x = s < e ? cow_map_at(&c->map, s) : NULL; x && x->start < e;
	     x = cow_map_next(&c->map, x)) {
		uint64_t a = x->start > s ? x->start : s, b = x->start + x->count < e ? x->start + x->count : e;
		if (x->state != state)
			n += b - a;
	}
	return n;
}

int cow_store_begin(struct cow *c, uint64_t off, uint64_t len, const void *buf)
{
	int rc = cow_store_end(c);
	if (rc == 0)
		rc = check_range(c, off, len);
	if (rc < 0)
		return rc;
	if (len > (1u << 30))
		return -E_RANGE;   /* its pieces are single commands */
	uint64_t s = off / c->lsize, e = (off + len) / c->lsize;
	/* One write per run of sectors the overlay has not written, all in flight at once. */
	cow_batch_init(&c->store);
	for (const struct cow_extent *x = cow_map_at(&c->map, s); x && x->start < e;) {
		bool written = x->written;
		uint64_t a = x->start > s ? x->start : s, r = x->start + x->count;
		while ((x = cow_map_next(&c->map, x)) && x->start < e && x->written == written)
			r = x->start + x->count;
		r = r < e ? r : e;
		if (!written) {
			c->sb.ctr[2]++;
			cow_batch_add(&c->store, c->dev, COW_IO_WRITE, c->sb.data_off + a * c->lsize,
				      (uint32_t)((r - a) * c->lsize), (const uint8_t *)buf + (a * c->lsize - off));
		}
	}
	c->store_off = off;
	c->store_len = len;
	c->storing = true;
	return 0;
}

int cow_store_end(struct cow *c)
{
	if (!c->storing)
		return 0;
	c->storing = false;   /* first: the record below may commit, which ends the store */
	/* A failing cow must never be mistaken for a bad source sector. */
	if (cow_batch_wait(&c->store, NULL) < 0)
		return -E_COWIO;
	uint64_t s = c->store_off / c->lsize, e = (c->store_off + c->store_len) / c->lsize;
	/* Counted once: a re-read of sectors already finished adds nothing. */
	uint64_t fresh = sectors_not_in(c, s, e, COW_FINISHED);
	int rc = record(c, s, e - s, COW_FINISHED, -1);
	if (rc == 0)
		c->sb.ctr[3] += fresh * c->lsize;
	return rc == 0 || rc == -E_NOSPC ? rc : -E_COWIO;
}

int cow_store_rescued(struct cow *c, uint64_t off, uint64_t len, const void *buf)
{
	int rc = cow_store_begin(c, off, len, buf);
	return rc < 0 ? rc : cow_store_end(c);
}

int cow_set_state(struct cow *c, uint64_t off, uint64_t len, uint8_t state)
{
	int rc = cow_store_end(c);
	if (rc == 0)
		rc = check_range(c, off, len);
	if (rc < 0)
		return rc;
	if (state == COW_FINISHED || cow_state_index(state) < 0)
		return -E_INVAL;
	uint64_t s = off / c->lsize, e = (off + len) / c->lsize;
	uint64_t fresh = state == COW_BAD ? sectors_not_in(c, s, e, COW_BAD) : 0;
	rc = record(c, s, e - s, state, -1);
	if (rc == 0)
		c->sb.ctr[4] += fresh * c->lsize;
	return rc;
}

int cow_check_source(struct cow *c, const struct cow_bdev *src, char *why, size_t whylen)
{
	struct superblock now;
	memset(&now, 0, sizeof(now));
	int rc = read_identity(c->env, src, &now);
	if (rc == 0)
		rc = identity_differs(&c->sb, &now, why, whylen);
	if (rc == 0 && c->sb.sampled && !(now.sampled & c->sb.sampled)) {
		set_why(why, whylen, "the source does not read yet (neither its first nor its last MiB)");
		rc = -E_AGAIN;
	}
	return rc;
}

const struct cow_map *cow_get_map(const struct cow *c)
{
	return &c->map;
}

void cow_get_counters(const struct cow *c, struct cow_counters *o)
{
	o->source_reads = c->sb.ctr[0];
	o->cow_reads = c->sb.ctr[1];
	o->cow_writes = c->sb.ctr[2];
	o->bytes_rescued = c->sb.ctr[3];
	o->bytes_bad = c->sb.ctr[4];
	o->commits = c->sb.ctr[5];
	o->last_commit_us = c->sb.ctr[6];
	/* Units holding data in the cow (any sector finished or written), from the map: a unit
	 * shared by two extents counts once. */
	uint64_t spu = c->sb.unit / c->lsize, last = UINT64_MAX;
	o->units_present = 0;
	for (const struct cow_extent *x = cow_map_get(&c->map, 0); x; x = cow_map_next(&c->map, x)) {
		if (!x->written && x->state != COW_FINISHED)
			continue;
		uint64_t a = x->start / spu, b = (x->start + x->count - 1) / spu;
		if (a == last)
			a++;
		if (a <= b)
			o->units_present += b - a + 1;
		last = b;
	}
}

void cow_get_geometry(const struct cow *c, struct cow_geometry *g)
{
	g->source_size = c->sb.src_size;
	g->data_offset = c->sb.data_off;
	g->journal_offset = c->sb.journal_off;
	g->journal_bytes = c->sb.journal_bytes;
	g->checkpoint_bytes = c->sb.ckpt_bytes;
	g->max_extents = c->sb.max_extents;
	if (paged(c)) {
		g->journal_offset = g->journal_bytes = g->checkpoint_bytes = 0;
		g->page_offset = c->sb.page_off;
		g->page_slots = c->sb.page_slots;
		g->pages_free = c->nfree;
	} else {
		g->page_offset = g->page_slots = g->pages_free = 0;
	}
	g->unit = c->sb.unit;
	g->src_lsize = c->sb.src_lsize;
	g->src_psize = c->sb.src_psize;
	g->version = c->sb.version;
	memcpy(g->uuid, c->sb.uuid, 16);
	memcpy(g->model, c->sb.model, sizeof(g->model));
	memcpy(g->serial, c->sb.serial, sizeof(g->serial));
	g->sb_seq = c->sb.seq;
}

int cow_upgrade(const struct cow_env *env, const struct cow_bdev *cowdev, char *why, size_t whylen)
{
	struct cow *c;
	int rc = cow_open(env, cowdev, NULL, &c, why, whylen);
	if (rc < 0)
		return rc;
	if (c->sb.version == COW_VERSION) {
		cow_discard(c);
		return 1;
	}
	if (c->sb.version == COW_V2) {
		/* The same pages with an empty log: one superblock write switches (the other one,
		 * version 2, names the same map). */
		c->sb.version = COW_VERSION;
		c->sb.log_slot = SLOT_NONE;
		c->sb.log_crc = 0;
		c->sb.log_recs = c->sb.sweep = 0;
		rc = log_alloc(c);
		if (rc == 0)
			rc = cow_sync(c);
		if (rc < 0)
			set_why(why, whylen, "writing the version-3 superblock failed: %s (the cow is still version 2)",
				err_str(rc));
		cow_discard(c);
		return rc;
	}
	/* The whole metadata area between the superblocks and the data becomes the page area; the
	 * version-1 checkpoint and journal in use stay untouched (busy) until a later commit. */
	struct superblock old = c->sb;
	uint64_t slots = (old.data_off - 2 * META_BLOCK) / MAP_PAGE, max = v2_extents_for(slots);
	if (max > 4 * EXTENTS_MAX)
		max = 4 * EXTENTS_MAX;
	if (max < c->map.n || slots >= SLOT_NONE) {
		set_why(why, whylen, "the metadata area (%llu bytes) holds at most %llu extents as version 3; the map has %llu",
			(unsigned long long)(old.data_off - 2 * META_BLOCK), (unsigned long long)max,
			(unsigned long long)c->map.n);
		cow_discard(c);
		return -E_NOSPC;
	}
	c->sb.version = COW_VERSION;
	c->sb.page_off = 2 * META_BLOCK;
	c->sb.page_slots = slots;
	c->sb.root_slot = SLOT_NONE;
	c->sb.max_extents = max;
	c->sb.root_crc = c->sb.map_extents = c->sb.map_pages = 0;
	c->sb.active_ckpt = 0;
	c->sb.log_slot = SLOT_NONE;
	c->sb.log_crc = 0;
	c->sb.log_recs = c->sb.sweep = 0;
	c->map.max = max;
	c->npending = 0;
	c->fresh_epoch = false;
	rc = busy_init(c);
	if (rc == 0)
		rc = log_alloc(c);
	if (rc == 0) {
		v2_protect_other(c, &old);
		map_forget_slots(&c->map);
		rc = cow_sync(c);
	}
	if (rc < 0)
		set_why(why, whylen, "writing the version-3 map failed: %s (the cow is still version 1)", err_str(rc));
	cow_discard(c);
	return rc;
}
