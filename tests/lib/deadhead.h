/* A drive with failed heads, for the rescue tests: serpentine LBA layout (in each zone a band of
 * tracks per head, heads in turn), whole bands of the dead heads unreadable, optional scattered
 * bad sectors and a weak area. Described by a one-line spec shared with the nbdkit model
 * (tests/qemu/deadhead_geometry.py), e.g.
 *   size=256M heads=4 dead=1 zones=64M:512K,64M:384K,128M:256K bad=5000+1 weak=90000+8:1
 * zones: length:band per zone (the last one runs to the end; each zone starts with head 0);
 * bad: start+count sectors; weak: start+count:tries (fails that many reads, then reads). */
#ifndef TESTS_DEADHEAD_H
#define TESTS_DEADHEAD_H
#include "../../cow/cow.h"

#define DH_SECTOR 512u
#define DH_MAX_ZONES 16
#define DH_MAX_RANGES 32

enum dh_kind { DH_GOOD, DH_BAD, DH_WEAK };

struct dh_geom {
	uint64_t sectors;
	uint32_t heads, dead_mask, tries;
	uint32_t nzones, nbad, nweak;
	struct { uint64_t start, count, band; } zone[DH_MAX_ZONES];
	struct { uint64_t start, count; } bad[DH_MAX_RANGES], weak[DH_MAX_RANGES];
};

/* 0, or -1 with a sentence in why. */
int dh_parse(const char *spec, struct dh_geom *g, char *why, size_t n);
enum dh_kind dh_kind_at(const struct dh_geom *g, uint64_t s);
/* The unreadable ranges (dead heads' bands and bad sectors), sorted and merged; returns the
 * count written (at most max), *total the count there are. */
uint32_t dh_bad_ranges(const struct dh_geom *g, uint64_t (*out)[2], uint32_t max, uint32_t *total);
/* Bad bands: maximal unreadable ranges of at least `min` sectors. */
uint32_t dh_count_bands(const struct dh_geom *g, uint64_t min);
/* The bytes of sector s: a pattern that differs for every sector. */
void dh_sector_data(uint64_t s, uint8_t *out);

/* The drive behind a cow_bdev with a fake clock: every read costs time (a bad one seconds, as
 * a drive retrying a dead head does), and the model records when every sector readable on the
 * first try has been read once, with the reads of bad areas up to then. */
struct dh_drive {
	struct cow_bdev bdev;
	struct dh_geom g;
	uint64_t *now_us;          /* the fake clock, advanced by reads */
	uint8_t *kind;             /* per sector */
	uint8_t *seen;             /* per sector: read well once */
	uint32_t *tries;           /* per sector: failed reads of a weak sector */
	uint64_t readable_left, weak_left;
	uint64_t reads, bad_reads, writes, last_end;
	uint64_t done_us, done_reads, done_bad_reads;   /* when readable_left reached 0 */
	uint64_t weak_done_us, weak_done_bad_reads;
	uint64_t bad_read_us;      /* cost of a read touching a bad sector */
	void *trace;               /* NULL, or a FILE * that gets a line per read (start, count, ok) */
};
int dh_drive_init(struct dh_drive *d, const char *spec, uint64_t *clock, char *why, size_t n);
void dh_drive_free(struct dh_drive *d);
#endif
