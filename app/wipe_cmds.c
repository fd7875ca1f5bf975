/* The `wipe` command: overwrites a whole disk or partition with zeros, a repeated pattern or a
 * seekable pseudo-random stream, optionally reads it all back, and refuses disks that matter. */
#include "report.h"
#include "../kernel/console.h"
#include "../lib/opts.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/settings.h"
#include "../kernel/shell.h"
#include "../kernel/task.h"
#include "../kernel/time.h"
#include "../lib/errors.h"
#include "../lib/port.h"
#include "../drivers/blk.h"

/* Several large requests in flight keep the device busy while the next buffer is filled or the
 * last one checked; the block layer splits them to the device's own limits. */
#define WIPE_DEPTH     4
#define WIPE_REQ_BYTES (2u << 20)
#define WIPE_PAT_MAX   64

enum wipe_mode { WIPE_ZERO, WIPE_PATTERN, WIPE_RANDOM };
static const char *const mode_names[] = { "zeros", "the pattern", "the random stream" };

struct wipe {
	struct blk_dev *d;
	enum wipe_mode mode;
	uint8_t pat[WIPE_PAT_MAX];
	uint32_t patlen;
	uint64_t seed;
	uint32_t per;                  /* sectors per request */
	bool zeroes;                   /* zeros written by the device's write-zeroes command */
	uint8_t *fill;                 /* zeros or the pattern: one request's data, from phase 0 */
	uint8_t *bufs[WIPE_DEPTH];     /* random writes and read-back */
	struct blk_req reqs[WIPE_DEPTH];

	/* One pass (the writes, or the read-back). */
	uint64_t next, done;           /* sectors submitted; sectors completed without error */
	struct wipe_fail {             /* failed requests, by LBA (the pass stops at the first) */
		uint64_t lba, count, err_lba;
		int rc;
	} fails[WIPE_DEPTH];
	int nfails;
	int interrupted;
	uint64_t bad, first_bad;       /* read-back: mismatching sectors, the lowest one */
	uint64_t t0;
};

/* SplitMix64: word i of the stream is mix(seed + (i + 1) * gamma), so any request can make (or
 * re-make, for verify) its own part without the ones before it; tests redo it on the host. */
#define SM_GAMMA 0x9E3779B97F4A7C15ULL
static inline uint64_t sm_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void random_fill(uint64_t seed, uint64_t word, uint64_t *out, size_t nwords)
{
	uint64_t s = seed + (word + 1) * SM_GAMMA;
	for (size_t i = 0; i < nwords; i++, s += SM_GAMMA)
		out[i] = sm_mix(s);   /* stored little-endian: byte 8i is the low byte of word i */
}

/* The first disk or partition with `flag`: among those sharing bytes with d, or anywhere on
 * its physical drive when whole_drive is set. */
static struct blk_dev *flagged(struct blk_dev *d, uint32_t flag, bool whole_drive)
{
	struct blk_dev *top = blk_drive(d);
	for (int i = 0; i < blk_count(); i++) {
		struct blk_dev *x = blk_get(i);
		bool near = whole_drive ? blk_drive(x) == top : blk_overlaps(x, d);
		if (near && (x->flags & flag))
			return x;
	}
	return NULL;
}

/* Every refusal is decided before a byte is written. A source's whole drive is refused, not
 * only the bound name: it is the failing disk being rescued. A cow is refused where a wipe
 * would overwrite it (the cow, its disk, a partition of it), and the boot disk everywhere. */
static int refuse(struct blk_dev *d)
{
	struct blk_dev *x;
	if (d->flags & BLK_F_OVERLAY) {
		kprintf("wipe: refused: %s is an overlay (%s): its writes would go into a rescued disk's cow\n",
			d->name, d->model);
		return cmd_said(-E_INVAL);
	}
	/* "vd1 is an overlay's source drive" or "vd1p2 is on vd1, an overlay's source drive" */
	char where[40];
	if ((x = flagged(d, BLK_F_SOURCE | BLK_F_BOOT, true))) {
		fmt_snprintf(where, sizeof(where), "%s%s%s", d->parent ? "on " : "",
			     d->parent ? blk_drive(x)->name : "", d->parent ? ", " : "");
		if (flagged(d, BLK_F_SOURCE, true)) {
			kprintf("wipe: refused: %s is %san overlay's source drive (cow close it first)\n",
				d->name, where);
			return cmd_said(-E_RDONLY);
		}
		kprintf("wipe: refused: %s is %sthe boot disk cowboot runs from\n", d->name, where);
		return cmd_said(-E_INVAL);
	}
	if ((x = flagged(d, BLK_F_COW, false))) {
		if (x == d)
			kprintf("wipe: refused: %s is an open cow (cow close it first)\n", d->name);
		else if (x == d->parent)
			kprintf("wipe: refused: %s is on %s, an open cow (cow close it first)\n", d->name, x->name);
		else
			kprintf("wipe: refused: %s holds an open cow, %s (cow close it first)\n", d->name, x->name);
		return -E_BUSY;
	}
	if ((x = flagged(d, BLK_F_TARGET, false))) {
		kprintf("wipe: refused: %s %s a clone job's target (stop the job and quit first)\n", d->name,
			x == d ? "is" : x == d->parent ? "is on" : "holds");
		return cmd_said(-E_BUSY);
	}
	if ((x = flagged(d, BLK_F_RO | BLK_F_DEV_RO, false))) {
		kprintf("wipe: refused: %s is read-only (%s)\n", d->name,
			x->flags & BLK_F_DEV_RO ? "the device is write-protected" : "protected until reboot");
		return cmd_said(-E_RDONLY);
	}
	return 0;
}

static void fmt_rate(char *out, size_t n, uint64_t bytes, uint64_t us)
{
	uint64_t kib_s = us ? bytes * 1000000 / 1024 / us : 0;
	fmt_snprintf(out, n, "%llu.%02llu MiB/s", (unsigned long long)(kib_s / 1024),
		     (unsigned long long)(kib_s % 1024 * 100 / 1024));
}

static void fmt_mib(char *out, size_t n, uint64_t bytes)
{
	uint64_t tenths = bytes * 10 >> 20;
	fmt_snprintf(out, n, "%llu.%llu MiB", (unsigned long long)(tenths / 10),
		     (unsigned long long)(tenths % 10));
}

static void progress_line(const struct wipe *w, bool verify, char *out, size_t n)
{
	uint64_t total = w->d->sectors, us = time_now_us() - w->t0;
	char done[24], all[24], rate[24], eta[24] = "-";
	fmt_mib(done, sizeof(done), w->done * w->d->lsize);
	fmt_mib(all, sizeof(all), total * w->d->lsize);
	fmt_rate(rate, sizeof(rate), w->done * w->d->lsize, us);
	uint64_t per_s = us ? w->done * 1000000 / us : 0;   /* sectors a second */
	if (per_s)
		fmt_snprintf(eta, sizeof(eta), "%llus", (unsigned long long)((total - w->done) / per_s));
	fmt_snprintf(out, n, "wipe %s: %s %llu%% (%s of %s) %s ETA %s", w->d->name,
		     verify ? "verifying" : "writing", (unsigned long long)(w->done * 100 / total), done,
		     all, rate, eta);
}

static bool words_equal(const uint64_t *a, const uint64_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

static bool random_matches(uint64_t seed, uint64_t word, const uint64_t *p, size_t n)
{
	uint64_t s = seed + (word + 1) * SM_GAMMA;
	for (size_t i = 0; i < n; i++, s += SM_GAMMA)
		if (p[i] != sm_mix(s))
			return false;
	return true;
}

/* A read-back request ended: every sector compared with what was written. */
static void check_read(struct wipe *w, const struct blk_req *r)
{
	uint32_t ls = w->d->lsize, words = ls / 8;
	for (uint32_t i = 0; i < r->count; i++) {
		const uint64_t *p = (const uint64_t *)((const uint8_t *)r->buf + (size_t)i * ls);
		bool ok = w->mode == WIPE_RANDOM
			? random_matches(w->seed, (r->lba + i) * words, p, words)
			: words_equal(p, (const uint64_t *)(w->fill + (size_t)i * ls), words);
		if (!ok) {
			if (!w->bad || r->lba + i < w->first_bad)
				w->first_bad = r->lba + i;
			w->bad++;
		}
	}
}

/* One pass over the device: writes (or reads back and compares), WIPE_DEPTH requests in
 * flight, until the end, the first error, or Ctrl-C. What is in flight is always let finish, so
 * everything below w->next has ended when it returns. */
static int run_pass(struct wipe *w, bool verify)
{
	struct blk_dev *d = w->d;
	uint64_t total = d->sectors;
	int live = setting_progress() == PROGRESS_LIVE, shown = 0, busy = 0, stop = 0;
	deadline_t tick = deadline_in_ms(live ? 1000 : 5000);
	char line[120];
	w->next = w->done = 0;
	w->nfails = 0;
	w->interrupted = 0;
	w->bad = 0;
	w->t0 = time_now_us();
	for (int i = 0; i < WIPE_DEPTH; i++)
		w->reqs[i] = (struct blk_req){ .complete = true };
	while ((w->next < total && !stop) || busy) {
		for (int i = 0; i < WIPE_DEPTH; i++) {
			struct blk_req *r = &w->reqs[i];
			if (!r->complete)
				continue;
			if (r->dev) {   /* reap */
				busy--;
				r->dev = NULL;
				if (r->status < 0) {
					int k = w->nfails++;
					for (; k > 0 && w->fails[k - 1].lba > r->lba; k--)
						w->fails[k] = w->fails[k - 1];
					w->fails[k] = (struct wipe_fail){ r->lba, r->count, r->err_lba, r->status };
					stop = 1;
				} else {
					w->done += r->count;
					if (verify)
						check_read(w, r);
				}
			}
			if (stop || w->next >= total)
				continue;
			bool zeroes = !verify && w->zeroes;
			uint32_t n = total - w->next < w->per ? (uint32_t)(total - w->next) : w->per;
			void *buf = zeroes ? NULL : w->fill;
			if (verify || w->mode == WIPE_RANDOM)
				buf = w->bufs[i];
			if (!verify && w->mode == WIPE_RANDOM)
				random_fill(w->seed, w->next * (d->lsize / 8), buf, (size_t)n * d->lsize / 8);
			*r = (struct blk_req){ .op = verify ? BLK_READ : zeroes ? BLK_WRITE_ZEROES : BLK_WRITE,
					       .lba = w->next, .count = n, .buf = buf };
			w->next += n;
			busy++;
			blk_submit(d, r);   /* a refusal completes the request at once: reaped above */
		}
		if (!stop && console_interrupted())
			stop = w->interrupted = 1;
		if (deadline_passed(tick) && !stop) {
			tick = deadline_in_ms(live ? 1000 : 5000);
			progress_line(w, verify, line, sizeof(line));
			kprintf(live ? "\r%-100.100s" : "%s\n", line);
			shown = live;
		}
		task_yield();
	}
	if (shown)
		kprintf("\n");
	return w->nfails ? w->fails[0].rc : w->interrupted ? -E_INTR : 0;
}

/* Writes (or reads back) LBA p..p+n-1 of the failed request f again, synchronously. */
static int piece_io(struct wipe *w, bool verify, const struct wipe_fail *f, uint64_t p, uint32_t n)
{
	struct blk_dev *d = w->d;
	if (verify)
		return blk_read(d, p, n, w->bufs[0], NULL);
	if (w->mode != WIPE_RANDOM)   /* the request began at phase 0 of the fill buffer */
		return blk_write(d, p, n, w->fill + (size_t)(p - f->lba) * d->lsize, NULL);
	random_fill(w->seed, p * (d->lsize / 8), (uint64_t *)w->bufs[0], (size_t)n * d->lsize / 8);
	return blk_write(d, p, n, w->bufs[0], NULL);
}

static int first_failing(struct wipe *w, bool verify, const struct wipe_fail *f, uint64_t lo,
			 uint64_t hi, uint32_t step, uint64_t *at)
{
	for (uint64_t p = lo; p < hi; p += step) {
		if (console_interrupted())
			return -E_INTR;
		int rc = piece_io(w, verify, f, p, hi - p < step ? (uint32_t)(hi - p) : step);
		if (rc < 0) {
			*at = p;
			return rc;
		}
	}
	return 0;
}

/* Devices name the failing sector only sometimes (virtio never: it gives the first LBA of a
 * piece, and QEMU may even fail neighbouring requests it merged), so a failed request is done
 * again in 64-sector pieces, then sector by sector inside the failing piece: at most per/64 + 64
 * requests, a bad sector costing one deadline per step. 1 and *at when found (everything
 * before it in f has then been written or read), 0 when f did not fail again, -1 when not
 * tried or stopped (Ctrl-C, the device gone). */
static int find_failing_sector(struct wipe *w, bool verify, const struct wipe_fail *f, uint64_t *at)
{
	uint64_t piece;
	if (f->rc == -E_GONE || f->rc == -E_RDONLY || f->rc == -E_NOMEM)
		return -1;
	int rc = first_failing(w, verify, f, f->lba, f->lba + f->count, 64, &piece);
	if (rc == 0 || rc == -E_INTR || rc == -E_GONE)
		return rc == 0 ? 0 : -1;
	uint64_t end = f->lba + f->count - piece < 64 ? f->lba + f->count : piece + 64;
	rc = first_failing(w, verify, f, piece, end, 1, at);
	return rc < 0 && rc != -E_INTR ? 1 : -1;
}

/* Names the first sector that fails again, trying the failed requests in LBA order: the
 * earlier ones were then done again in full, so everything below it is written (or read). */
static int report_failure(struct wipe *w, bool verify)
{
	const char *name = w->d->name, *what = verify ? "read-back" : "write";
	const struct wipe_fail *f = &w->fails[0];
	uint64_t sector, below = f->lba;
	int found = 0;
	for (int i = 0; i < w->nfails && found == 0; i++)
		if ((found = find_failing_sector(w, verify, &w->fails[i], &sector)) == 1)
			f = &w->fails[i];
	if (found == 1) {
		kprintf("wipe %s: %s failed at LBA %llu: %s\n", name, what, (unsigned long long)sector,
			err_str(f->rc));
		below = sector;
	} else {
		kprintf("wipe %s: %s of LBA %llu-%llu failed: %s", name, what, (unsigned long long)f->lba,
			(unsigned long long)(f->lba + f->count - 1), err_str(f->rc));
		if (f->err_lba != BLK_NO_LBA)
			kprintf(" (the device named LBA %llu)", (unsigned long long)f->err_lba);
		kprintf("\n");
		if (found == 0)
			kprintf("wipe %s: doing that again in small pieces did not fail\n", name);
	}
	kprintf("wipe %s: stopped; the %llu sectors before LBA %llu were %s\n", name,
		(unsigned long long)below, (unsigned long long)below, verify ? "read back" : "written");
	return f->rc;
}

static int wipe_run(struct wipe *w, bool verify)
{
	struct blk_dev *d = w->d;
	uint64_t total = d->sectors;
	char size[24], rate[24];
	w->zeroes = w->mode == WIPE_ZERO && (d->flags & BLK_F_ZEROES);
	if (w->zeroes)
		kprintf("wipe %s: zeros by the device's write-zeroes command (no data sent)\n", d->name);
	int rc = run_pass(w, false);
	if (rc == -E_UNSUPP && w->zeroes) {
		kprintf("wipe %s: the device refused write-zeroes; writing the zeros instead\n", d->name);
		w->zeroes = false;
		rc = run_pass(w, false);
	}
	uint64_t us = time_now_us() - w->t0;
	/* Flushed even after Ctrl-C or an error: what the report says was written should be on
	 * the media, not in the drive's cache. */
	int frc = blk_flush(d);
	if (rc == -E_INTR) {
		kprintf("wipe %s: interrupted at LBA %llu of %llu (%llu%%): LBA 0-%llu written%s, the rest untouched\n",
			d->name, (unsigned long long)w->next, (unsigned long long)total,
			(unsigned long long)(w->next * 100 / total),
			(unsigned long long)(w->next ? w->next - 1 : 0), frc ? "" : " and flushed");
		return cmd_said(rc);
	}
	if (rc < 0)
		return report_failure(w, false);
	if (frc < 0) {
		kprintf("wipe %s: the final flush failed: %s\n", d->name, err_str(frc));
		return frc;
	}
	fmt_mib(size, sizeof(size), total * d->lsize);
	fmt_rate(rate, sizeof(rate), total * d->lsize, us);
	kprintf("wipe %s: wrote %s (%llu sectors) of %s in %llu ms, %s; flushed\n", d->name, size,
		(unsigned long long)total, mode_names[w->mode], (unsigned long long)(us / 1000), rate);
	if (!verify)
		return 0;
	rc = run_pass(w, true);
	us = time_now_us() - w->t0;
	if (rc == -E_INTR) {
		kprintf("verify %s: interrupted at LBA %llu of %llu: %llu bad sectors so far\n", d->name,
			(unsigned long long)w->next, (unsigned long long)total, (unsigned long long)w->bad);
		return cmd_said(rc);
	}
	if (rc < 0)
		return report_failure(w, true);
	fmt_rate(rate, sizeof(rate), total * d->lsize, us);
	if (w->bad) {
		kprintf("verify %s: %llu bad sectors, first mismatch at LBA %llu (%llu ms, %s)\n", d->name,
			(unsigned long long)w->bad, (unsigned long long)w->first_bad,
			(unsigned long long)(us / 1000), rate);
		return cmd_said(-E_CRC);
	}
	kprintf("verify %s: all %llu sectors match (%llu ms, %s)\n", d->name, (unsigned long long)total,
		(unsigned long long)(us / 1000), rate);
	return 0;
}

static int wipe_buffers(struct wipe *w, bool verify)
{
	struct blk_dev *d = w->d;
	uint32_t per = WIPE_REQ_BYTES / d->lsize;
	if (per > d->sectors)
		per = (uint32_t)d->sectors;
	if (w->mode == WIPE_PATTERN) {
		/* Each request starts at a multiple of the pattern's length, so one buffer serves them
		 * all and the pattern runs on unbroken from the device's first byte. */
		per -= per % w->patlen;
		if (per < w->patlen)
			per = w->patlen;
	}
	w->per = per;
	size_t bytes = (size_t)per * d->lsize;
	if (w->mode != WIPE_RANDOM) {
		w->fill = kzalloc(bytes);
		if (!w->fill)
			return -E_NOMEM;
		if (w->mode == WIPE_PATTERN)
			for (size_t i = 0; i < bytes; i++)
				w->fill[i] = w->pat[i % w->patlen];
	}
	if (verify || w->mode == WIPE_RANDOM)
		for (int i = 0; i < WIPE_DEPTH; i++)
			if (!(w->bufs[i] = kmalloc(bytes)))
				return -E_NOMEM;
	return 0;
}

static void wipe_free(struct wipe *w)
{
	for (int i = 0; i < WIPE_DEPTH; i++)
		if (w->bufs[i])
			kfree(w->bufs[i]);
	if (w->fill)
		kfree(w->fill);
}

/* One fill mode (group 1): zero, pattern=<hex>, random or random=<seed>. */
struct wipe_args { bool zero, random, verify, yes; uint8_t pat[WIPE_PAT_MAX]; uint32_t patlen; uint64_t seed; };
static const struct opt wipe_table[] = {
	OPT_FLAG_("zero", struct wipe_args, zero, .group = 1),
	OPT_HEX_("pattern", struct wipe_args, pat, patlen, .group = 1),
	OPT_FLAG_("random", struct wipe_args, random, .group = 1),
	OPT_NUM_("random", struct wipe_args, seed, 0, 0, .group = 1),
	OPT_FLAG_("verify", struct wipe_args, verify),
	OPT_FLAG_("--yes", struct wipe_args, yes),
	OPT_POS_("serial"),   /* the disk, named by its serial */
	OPT_END,
};

static int cmd_wipe(int argc, char **argv)
{
	static struct wipe w;   /* one wipe at a time: only the shell task runs commands */
	struct wipe_args a = { 0 };
	struct opts_result res;
	int rc = opts_parse(wipe_table, &a, 0, argc - 1, argv + 1, 1, &res);
	if (rc < 0) {
		kprintf("wipe: %s\n", res.why);
		return cmd_said(rc);
	}
	if (res.npos != 1)
		return -E_USAGE;
	bool verify = a.verify, yes = a.yes, seeded = opts_given(wipe_table, &res, "random=");
	memset(&w, 0, sizeof(w));
	w.mode = a.patlen ? WIPE_PATTERN : a.random || seeded ? WIPE_RANDOM : WIPE_ZERO;
	memcpy(w.pat, a.pat, sizeof(w.pat));
	w.patlen = a.patlen;
	w.seed = a.seed;
	struct blk_dev *d = blk_find(argv[1 + res.pos[0]]);
	if (!d)
		return -E_NOENT;
	rc = refuse(d);
	if (rc < 0)
		return rc;
	if (!yes) {
		char size[24];
		blk_format_size(size, sizeof(size), d->sectors * d->lsize);
		kprintf("wipe: this destroys everything on %s (%s); add --yes\n", d->name, size);
		return cmd_said(-E_INVAL);
	}
	if (d->lsize % 8 || d->sectors == 0)
		return -E_ALIGN;
	if (w.mode == WIPE_RANDOM && !seeded)
		w.seed = sm_mix(time_now_us() ^ d->sectors ^ ((uint64_t)d->instance << 32));
	w.d = d;
	rc = wipe_buffers(&w, verify);
	if (rc == 0) {
		/* The event log keeps what was destroyed, by serial, for whoever reads `log` later. */
		char size[24];
		blk_format_size(size, sizeof(size), d->sectors * d->lsize);
		log_event(LOG_INFO, "wipe %s (%s, serial '%s'): %s%s", d->name, size, d->serial,
			  mode_names[w.mode], verify ? ", verify" : "");
		if (w.mode == WIPE_RANDOM)
			kprintf("wipe %s: random stream seed 0x%016llx (random=0x%llx writes it again)\n",
				d->name, (unsigned long long)w.seed, (unsigned long long)w.seed);
		rc = wipe_run(&w, verify);
		if (rc < 0)
			log_event(LOG_WARN, "wipe %s ended: %s", d->name, err_str(rc));
		else
			log_event(LOG_INFO, "wipe %s ended: %s", d->name, verify ? "written and verified" : "written");
		char line[160];
		fmt_snprintf(line, sizeof(line), "wipe %s (%s, serial '%s', %s%s) ended: %s", d->name, size,
			     d->serial, mode_names[w.mode], verify ? ", verify" : "",
			     rc < 0 ? err_str(rc) : verify ? "written and verified" : "written");
		report_job_ended(line);
	}
	wipe_free(&w);
	return rc;
}
COMMAND(wipe, "wipe <disk> [zero|pattern=<hex>|random[=<seed>]] [verify] --yes",
	"overwrite a whole disk or partition, with progress; refuses sources, cows, the boot disk",
	"zero (the default) writes zeros; pattern=<hex> repeats 1 to 64 bytes from the first byte;\n"
	"  random writes a SplitMix64 stream (its seed is printed; random=<seed> repeats it). verify\n"
	"  reads everything back and reports the first mismatching LBA and the bad sectors. Refused\n"
	"  for any disk or partition on an overlay's source drive or the boot disk, a disk holding\n"
	"  an open cow, a read-only disk, and without --yes. Ctrl-C stops it and says how far it got.\n"
	"  Progress: a live line each second (set progress=lines: a full line every 5 s).",
	cmd_wipe);
