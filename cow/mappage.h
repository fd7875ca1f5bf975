/* The map's pages, shared by the map (cow/map.c) and the cow's version-2 metadata (cow/cow.c):
 * in memory a chunk of extents is byte for byte the 4 KiB page it is stored as, so a commit
 * writes changed chunks as they are. Not for the map's users; they see cow.h. */
#ifndef COW_MAPPAGE_H
#define COW_MAPPAGE_H

#include "cow.h"

#define MAP_PAGE      4096u
#define MAP_PAGE_HDR  32u
#define CHUNK_MAX     ((MAP_PAGE - MAP_PAGE_HDR) / 8)   /* 508 extents a page */
#define CHUNK_MIN     (CHUNK_MAX / 2)
#define IDX_MAX       ((MAP_PAGE - MAP_PAGE_HDR) / 8)   /* 508 (slot, crc) entries a page */
#define IDX_MIN       (IDX_MAX / 2)
#define SLOT_NONE     0xffffffffu

#define PAGE_LEAF  0x464c4d43u   /* "CMLF": extents */
#define PAGE_INDEX 0x58494d43u   /* "CMIX": leaves of a group */
#define PAGE_ROOT  0x54524d43u   /* "CMRT": the groups */
#define PAGE_LOG   0x474c4d43u   /* "CMLG": version 3's log of map changes */
#define PAGE_LOGIX 0x494c4d43u   /* "CMLI": the log's pages */

/* Every page: magic, CRC-32C of bytes 8..4095, entries used, the slot it was written to, the
 * commit (superblock sequence) that wrote it, and its first source sector. In memory a chunk's
 * slot, crc and first describe its page as last written (slot SLOT_NONE: never); gen is the
 * commit that wrote it, or once GEN_DIRTY is set (its extents changed) the first commit whose
 * log holds a change to it; GEN_MOVED: its range changed too (it split, merged, took or gave
 * extents, its first sector moved, its successor went), so the next commit must write it: the
 * pages on disk tile the source as the chunks do. */
#define GEN_DIRTY (1ull << 63)
#define GEN_MOVED (1ull << 62)
#define GEN_SEQ(g) ((g) & ~(GEN_DIRTY | GEN_MOVED))
struct map_page_hdr {
	uint32_t magic, crc, n, slot;
	uint64_t gen, first;
};

/* A leaf entry: start sector << 4 | written << 3 | state index (cow_state_index). An extent ends
 * where the next one starts (the next leaf's first, or the source's end). */
#define ENT(start, w, s) (((uint64_t)(start) << 4) | ((uint64_t)(w) << 3) | (uint64_t)(s))
#define ENT_START(e)     ((e) >> 4)
#define ENT_FLAGS(e)     ((e) & 15u)

struct cow_map_chunk {
	struct map_page_hdr h;
	uint64_t e[CHUNK_MAX];
};
_Static_assert(sizeof(struct cow_map_chunk) == MAP_PAGE, "a chunk is its page");

/* Index pages and the root: (slot, crc) of each child in order. */
struct map_idx_ent { uint32_t slot, crc; };
struct map_idx_page {
	struct map_page_hdr h;
	struct map_idx_ent e[IDX_MAX];
};
_Static_assert(sizeof(struct map_idx_page) == MAP_PAGE, "an index page is one page");

/* Version 3's log: each map change since the oldest one not yet in a map page, 16 bytes: start
 * sector, then count << 8 | written code << 4 | state code (state 0 keeps it, else index + 1;
 * written 0 keeps it, 1 clears, 2 sets), replayed in order over the map pages at open. */
struct map_log_rec { uint64_t start, count_flags; };
#define LOG_MAX ((MAP_PAGE - MAP_PAGE_HDR) / 16)   /* 254 records a page */
struct map_log_page {
	struct map_page_hdr h;
	struct map_log_rec r[LOG_MAX];
};
_Static_assert(sizeof(struct map_log_page) == MAP_PAGE, "a log page is one page");

/* The groups of consecutive chunks that share an index page. */
struct cow_map_index {
	uint64_t n, cap;
	uint64_t *first;          /* each group's first chunk; first[0] == 0 */
	uint32_t *slot, *crc;     /* where its index page was last written, and that page's CRC */
	uint8_t *dirty;           /* changed since (a member changed, or membership) */
	uint32_t *freed;          /* slots of pages dropped since the last commit took the list */
	uint64_t nfreed, freedcap;
	uint64_t changes;         /* counts every change: views of extents stay valid while it holds */
};

/* The last i < n with first[i] <= key, first[] ascending and n > 0 (0 when key is below them
 * all): which chunk holds a sector, which group holds a chunk. */
static inline uint64_t map_floor(const uint64_t *first, uint64_t n, uint64_t key)
{
	uint64_t lo = 0, hi = n - 1;
	while (lo < hi) {
		uint64_t mid = (lo + hi + 1) / 2;
		if (first[mid] <= key)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

uint32_t map_page_crc(const void *page);
uint8_t map_state_char(unsigned idx);
/* Replaces the map by adopted chunks (each written at h.slot, clean) under `ng` groups of
 * gcount[g] chunks with their index pages' slots and CRCs. The chunks are the map's from then
 * on, also on failure (-E_NOMEM, -E_NOSPC: more than max extents). The caller has checked them. */
int map_adopt(struct cow_map *m, struct cow_map_chunk **chunks, uint64_t nchunks, uint64_t n,
	      const uint32_t *gcount, const uint32_t *gslot, const uint32_t *gcrc, uint64_t ng);
/* Forgets every page's slot: a map loaded from a version-1 checkpoint, or before an upgrade. */
void map_forget_slots(struct cow_map *m);
/* Merges equal extents that meet at a chunk boundary (left by a replayed log over pages written
 * at different commits). 0 or -E_NOMEM. */
int map_normalize(struct cow_map *m);

#endif
