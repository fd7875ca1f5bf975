/* The rescue algorithm (spec rescue.md, docs/rescue.md): copy with growing reads, learning the
 * bad bands and their pattern (a failed head) in the first pass, edges from finished data, trim,
 * scrape, the insides of large bad areas last, retry, over an open cow's map. Pure C: the caller supplies the clock (cow_env), a
 * stop check and an event sink, and runs it on a task of its own; the map is its whole state,
 * so a later run resumes where an earlier one (or a power cut) left off. */
#ifndef COW_RESCUE_H
#define COW_RESCUE_H

#include "../cow/cow.h"

enum rescue_phase { RP_COPY, RP_TRIM, RP_SCRAPE, RP_RETRY, RP_DONE };

#define RESCUE_PASS_COPY   0x1u
#define RESCUE_PASS_TRIM   0x2u
#define RESCUE_PASS_SCRAPE 0x4u
#define RESCUE_PASS_RETRY  0x8u
#define RESCUE_PASS_INTERIORS 0x10u   /* the insides of large bad areas, read last */
#define RESCUE_PASS_ALL    0x1fu

struct rescue_range { uint64_t start, count; };   /* source logical sectors */

/* A domain: ranges of source sectors in groups done one after another, each through all the
 * phases (an NTFS volume's metadata before its file data). Each group is sorted and disjoint,
 * and holds nothing an earlier group holds. No ranges at all: the whole source. */
#define RESCUE_MAX_GROUPS 8
struct rescue_domain {
	struct rescue_range *range;
	uint32_t n, cap;
	uint32_t ngroups;
	uint32_t group_end[RESCUE_MAX_GROUPS];   /* index past each group's last range */
	const struct cow_env *env;
};
void rescue_domain_init(struct rescue_domain *d, const struct cow_env *env);
void rescue_domain_free(struct rescue_domain *d);
/* Adds a range to the group being built (any order, overlaps allowed): 0, -E_NOMEM, or
 * -E_NOSPC past RESCUE_MAX_GROUPS groups. */
int rescue_domain_add(struct rescue_domain *d, uint64_t start, uint64_t count);
/* Closes the group being built: sorts and merges it and takes out what earlier groups hold. */
int rescue_domain_end_group(struct rescue_domain *d);
int rescue_domain_copy(struct rescue_domain *dst, const struct rescue_domain *src);
uint64_t rescue_domain_sectors(const struct rescue_domain *d);

struct rescue_opts {
	uint64_t cluster;          /* bytes per copy read, and the unit failures are marked in */
	uint64_t max_read;         /* copy reads grow to this while they succeed */
	uint64_t skip_min, skip_max;   /* bytes; skip_max 0: 1/64 of the source, 64 KiB..1 GiB */
	uint32_t retries;          /* passes over bad sectors */
	uint32_t timeout_ms;       /* per command, applied by the caller's device; 0: its default */
	uint64_t min_rate;         /* bytes/s; slower copy reads count as failures for skipping */
	uint32_t passes;           /* RESCUE_PASS_* */
	int reverse;               /* first copy pass backwards */
	int no_infer;              /* infer=off: no head map, bad bands are all found by reading */
	uint64_t commit_ms;        /* commit interval */
	const struct rescue_domain *domain;   /* NULL or empty: the whole source; the caller's */
};

struct rescue_stats {
	enum rescue_phase phase;
	uint32_t pass;
	uint32_t group;            /* the domain group being done, from 1 */
	int dir;                   /* +1 forwards, -1 backwards */
	uint64_t pos;              /* byte position of the current read */
	uint64_t reads, failed_reads, slow_reads, probes;
	uint64_t bytes_ok;         /* read and stored this run */
	uint64_t start_us, last_good_us, elapsed_us;
	uint64_t rate;             /* bytes/s over the last second or so */
	uint64_t clone_bytes;      /* written to the clone target */
	uint64_t bands, bands_predicted;   /* bad bands met in the first pass; skipped unread */
	uint64_t interior_areas, interior_bytes;   /* large bad areas' insides left for last */
	int interiors_now;         /* 1 while reading them */
	char pattern[160];         /* the head map in words, once inferred ("" before) */
};

/* What the first pass has learnt of the bad bands (docs/rescue.md, "Dead heads"): the last
 * few, the skip their lengths suggest, and the periodic pattern once it repeats. */
#define RESCUE_HIST 8
struct rescue_band { uint64_t start, len; uint8_t how; };   /* how: 0 length assumed, 1 read, 2 predicted */
struct rescue_learn {
	struct rescue_band h[RESCUE_HIST];
	uint32_t n;
	uint64_t skip;             /* sectors: the last band's length, once two were measured */
	uint32_t measured, since_verify;
	int active;                /* a prediction holds */
	uint32_t k;                /* bands per period */
	uint64_t period, next_start, next_len;
	uint64_t lens[16];         /* the band lengths met: areas of these lengths are likely bands */
	uint32_t nlens, nsuspect;
	uint64_t suspect[8][2];    /* predicted bands just before the pattern changed: read early */
};

struct rescue_hooks {
	void *ctx;
	int (*should_stop)(void *ctx);                 /* nonzero: commit and return -E_STOPPED */
	void (*event)(void *ctx, const char *text);    /* phase changes, device loss, summary */
	/* Clone: every rescued block also goes to this device at the same offset, its write in
	 * flight while the cow's runs (dm-io style: one block, two destinations, a status each);
	 * flushed at the end of the run. NULL: no clone. */
	const struct cow_bdev *target;
};

struct rescue {
	struct cow *cow;
	const struct cow_env *env;
	struct rescue_opts opt;
	struct rescue_hooks hooks;
	struct rescue_stats st;
	uint8_t *buf, *buf2;       /* buf2: the cow may still be writing it (copy passes) */
	int overlap;
	uint32_t lsize, block;     /* logical sector; trim/scrape unit (the physical sector) */
	uint64_t sectors;
	uint64_t last_commit_us, win_us, win_bytes;
	/* Failures recorded since the last good read, undone if the source proves unresponsive. */
	struct rescue_undo { uint64_t start, count; uint8_t old; } undo[64];
	uint32_t nundo, nfail, probe_after;
	uint64_t probe_off;        /* a block that read well: re-read to tell a dead drive */
	int have_probe;
	uint32_t dlo, dhi;         /* the domain group's ranges being done */
	struct rescue_learn learn;
	int target_rc;             /* first clone target failure */
	uint64_t target_off;
};

void rescue_opts_default(struct rescue_opts *o);
/* Parses a domain spec into d (emptied first; "all" leaves it empty):
 * "all" or "lba:<start>+<count>[,<start>+<count>...]" (sectors), one group. */
int rescue_parse_domain(struct rescue_domain *d, const char *spec, uint64_t sectors, char *why, size_t n);

int rescue_init(struct rescue *r, struct cow *c, const struct cow_env *env,
		const struct rescue_opts *o, const struct rescue_hooks *h);
/* Runs until the domain is done (0), a stop was asked (-E_STOPPED), the source stopped
 * answering (-E_GONE: failures since its last good read are undone), or the cow or the clone
 * target failed (-E_COWIO, -E_TARGET, ...). Commits before returning. */
int rescue_run(struct rescue *r);
void rescue_free(struct rescue *r);

const char *rescue_phase_name(enum rescue_phase p);
/* Bytes still to do in the domain per state: [0] '?', [1] '*', [2] '/', [3] '-', [4] '+'. */
void rescue_domain_totals(const struct rescue *r, uint64_t bytes[5], uint64_t areas[5]);

#endif
