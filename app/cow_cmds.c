/* The cow commands of the console: the block layer's disks as cow devices, overlays ov0..ov7,
 * `cow format/open/close/sync/stats/list` and `map`. Overlays are committed at shutdown. */
#include "../kernel/console.h"
#include "../lib/args.h"
#include "../lib/opts.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/power.h"
#include "../kernel/shell.h"
#include "../kernel/task.h"
#include "../kernel/time.h"
#include "overlay.h"
#include "../lib/errors.h"
#include "../lib/port.h"

static struct overlay overlays[MAX_OV];

/* A cow request is a block-layer request kept in the cow_io's own room; reads carry the
 * adapter's deadline. wait lets the other tasks run until the request has ended. */
_Static_assert(sizeof(struct blk_req) <= COW_IO_PRIV, "a block-layer request must fit in a cow_io");

static void ad_submit(void *ctx, struct cow_io *io)
{
	struct bdev_adapter *a = ctx;
	struct blk_req *r = (struct blk_req *)io->priv;
	static const uint8_t ops[] = { [COW_IO_READ] = BLK_READ, [COW_IO_WRITE] = BLK_WRITE,
				       [COW_IO_FLUSH] = BLK_FLUSH };
	*r = (struct blk_req){ .op = ops[io->op], .lba = io->off / a->blk->lsize,
			       .count = io->len / a->blk->lsize, .buf = io->buf,
			       .timeout_ms = io->op == COW_IO_READ ? a->timeout_ms : 0 };
	blk_submit(a->blk, r);   /* a refusal completes the request with its status */
}

static int ad_wait(void *ctx, struct cow_io *io)
{
	struct bdev_adapter *a = ctx;
	struct blk_req *r = (struct blk_req *)io->priv;
	while (!r->complete)
		task_yield();
	io->status = r->status;
	if (r->status < 0)
		io->bad_off = r->err_lba == BLK_NO_LBA ? io->off : r->err_lba * a->blk->lsize;
	return r->status;
}

void bdev_adapt(struct bdev_adapter *a, struct blk_dev *d)
{
	memset(a, 0, sizeof(*a));
	a->blk = d;
	a->bdev = (struct cow_bdev){ .ctx = a, .size = d->sectors * d->lsize, .lsize = d->lsize,
				     .psize = d->psize, .submit = ad_submit, .wait = ad_wait };
	memcpy(a->bdev.model, d->model, sizeof(a->bdev.model) - 1);
	memcpy(a->bdev.serial, d->serial, sizeof(a->bdev.serial) - 1);
	memcpy(a->bdev.wwn, d->wwn, sizeof(a->bdev.wwn));
	a->bdev.wwn_len = d->wwn_len;
}

static uint64_t rnd_state;
static void env_random(void *buf, size_t n)
{
	uint32_t lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	rnd_state ^= ((uint64_t)hi << 32 | lo) * 0x9E3779B97F4A7C15ULL;
	for (size_t i = 0; i < n; i++) {
		rnd_state ^= rnd_state << 13;
		rnd_state ^= rnd_state >> 7;
		rnd_state ^= rnd_state << 17;
		((uint8_t *)buf)[i] = (uint8_t)rnd_state;
	}
}
const struct cow_env kernel_env = { kmalloc, kfree, time_now_us, env_random };

static struct overlay *find_overlay(const char *name)
{
	if (strncmp(name, "ov", 2) || name[2] < '0' || name[2] > '7' || name[3])
		return NULL;
	struct overlay *o = &overlays[name[2] - '0'];
	return o->cow ? o : NULL;
}

struct overlay *overlay_find(const char *name)
{
	struct overlay *o = find_overlay(name);
	if (!o)
		kprintf("no overlay '%s' (see cow list)\n", name);
	return o;
}

struct overlay *overlay_get(int i)
{
	return i >= 0 && i < MAX_OV && overlays[i].cow ? &overlays[i] : NULL;
}

int overlay_index(const struct overlay *o)
{
	return (int)(o - overlays);
}

static int busy_disk(const struct blk_dev *d)
{
	for (int i = 0; i < MAX_OV; i++)
		if (overlays[i].cow && (overlays[i].src.blk == d || overlays[i].dst.blk == d))
			return 1;
	return 0;
}

/* Source protection is recomputed from the open overlays, so closing one never unprotects a
 * disk (or a partition of it) that another overlay still reads. */
void overlay_refresh_source_flags(void)
{
	for (int i = 0; i < blk_count(); i++)
		blk_get(i)->flags &= ~BLK_F_SOURCE;
	for (int i = 0; i < MAX_OV; i++)
		if (overlays[i].cow)
			blk_protect_tree(overlays[i].src.blk, BLK_F_SOURCE, true);
}

void wall_text(char *out, size_t n)
{
	struct wall_time t;
	time_wall(&t);
	fmt_snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d", t.year, t.month, t.day, t.hour,
		     t.minute, t.second);
}

struct format_opts { bool yes; uint64_t unit; };
static const struct opt format_table[] = {
	OPT_FLAG_("--yes", struct format_opts, yes),
	OPT_SIZE_("unit", struct format_opts, unit, 512, 1u << 20, false),
	OPT_POS_("serial"),   /* a disk named by its serial */
	OPT_END,
};

static int cow_format_cmd(int argc, char **argv)
{
	struct format_opts o = { false, 4096 };
	struct opts_result res;
	int orc = opts_parse(format_table, &o, 0, argc - 2, argv + 2, 2, &res);
	if (orc < 0) {
		kprintf("cow format: %s\n", res.why);
		return cmd_said(orc);
	}
	if (res.npos != 2)
		return -E_USAGE;
	uint64_t unit = o.unit;
	bool yes = o.yes;
	struct blk_dev *cow = blk_find(argv[2 + res.pos[0]]), *src = blk_find(argv[2 + res.pos[1]]);
	if (!cow || !src)
		return -E_NOENT;
	if (blk_overlaps(cow, src)) {
		kprintf("cow format: the cow and the source must be different disks\n");
		return cmd_said(-E_INVAL);
	}
	if (busy_disk(cow)) {
		kprintf("cow format: %s is in use by an open overlay\n", cow->name);
		return cmd_said(-E_BUSY);
	}
	if (!yes) {
		kprintf("cow format: this destroys what %s holds; add --yes\n", cow->name);
		return cmd_said(-E_INVAL);
	}
	struct bdev_adapter ca, sa;
	bdev_adapt(&ca, cow);
	bdev_adapt(&sa, src);
	char why[200] = "";
	int rc = cow_format(&kernel_env, &ca.bdev, &sa.bdev, (uint32_t)unit, why, sizeof(why));
	if (rc < 0) {
		kprintf("cow format: %s\n", why[0] ? why : err_str(rc));
		return cmd_said(rc);
	}
	log_event(LOG_INFO, "%s formatted as the cow of %s", cow->name, src->name);
	return 0;
}

static int cow_open_cmd(int argc, char **argv)
{
	if (argc != 4)
		return -E_USAGE;
	struct blk_dev *src = blk_find(argv[2]), *cow = blk_find(argv[3]);
	if (!cow || !src)
		return -E_NOENT;
	if (busy_disk(cow) || busy_disk(src)) {
		kprintf("cow open: %s or %s is already in an open overlay\n", src->name, cow->name);
		return cmd_said(-E_BUSY);
	}
	int slot = 0;
	while (slot < MAX_OV && overlays[slot].cow)
		slot++;
	if (slot == MAX_OV)
		return -E_NOSPC;
	struct overlay *o = &overlays[slot];
	rescue_domain_init(&o->next_domain, &kernel_env);
	bdev_adapt(&o->src, src);
	bdev_adapt(&o->dst, cow);
	/* Protect the source before the first byte is read for the identity check. */
	blk_protect_tree(src, BLK_F_SOURCE, true);
	char why[200] = "";
	int rc = cow_open(&kernel_env, &o->dst.bdev, &o->src.bdev, &o->cow, why, sizeof(why));
	if (rc < 0) {
		o->cow = NULL;
		overlay_refresh_source_flags();
		kprintf("cow open: %s\n", why[0] ? why : err_str(rc));
		return cmd_said(rc);
	}
	cow->flags |= BLK_F_COW;
	wall_text(o->start_time, sizeof(o->start_time));
	kprintf("ov%d: %s over %s (source read-only)\n", slot, cow->name, src->name);
	ov_disk_attach(o);   /* a failure is said there; the overlay itself is open */
	log_event(LOG_INFO, "ov%d opened: cow %s, source %s", slot, cow->name, src->name);
	return 0;
}

/* Rewrites an older cow's map as the current version in place, with the same crash-safe engine
 * function as `cowtool upgrade`. Not while the disk is in an open overlay. */
static int cow_upgrade_cmd(int argc, char **argv)
{
	if (argc != 3)
		return -E_USAGE;
	struct blk_dev *cow = blk_find(argv[2]);
	if (!cow)
		return -E_NOENT;
	if (busy_disk(cow) || (cow->flags & (BLK_F_SOURCE | BLK_F_COW))) {
		kprintf("cow upgrade: %s is in use by an open overlay (cow close it first)\n", cow->name);
		return cmd_said(-E_BUSY);
	}
	struct bdev_adapter ca;
	bdev_adapt(&ca, cow);
	char why[200] = "";
	int rc = cow_upgrade(&kernel_env, &ca.bdev, why, sizeof(why));
	if (rc < 0) {
		kprintf("cow upgrade: %s: %s\n", cow->name, why[0] ? why : err_str(rc));
		return cmd_said(rc);
	}
	kprintf(rc == 1 ? "%s: already version 3\n" : "%s: upgraded to version 3\n", cow->name);
	if (rc == 0)
		log_event(LOG_INFO, "%s upgraded to cow format version 3", cow->name);
	return 0;
}

static int sync_one(struct overlay *o, int idx)
{
	int rc = overlay_commit(o);
	if (rc < 0)
		kprintf("ov%d: commit failed: %s\n", idx, err_str(rc));
	return rc;
}

static void print_stats(struct overlay *o, int idx)
{
	struct cow_counters c;
	struct cow_totals t;
	cow_get_counters(o->cow, &c);
	cow_map_totals(cow_get_map(o->cow), &t);
	uint32_t ls = o->src.blk->lsize;
	kprintf("ov%d: source %s, cow %s\n", idx, o->src.blk->name, o->dst.blk->name);
	kprintf("  source reads %llu, cow reads %llu, cow writes %llu, commits %llu, units present %llu\n",
		(unsigned long long)c.source_reads, (unsigned long long)c.cow_reads,
		(unsigned long long)c.cow_writes, (unsigned long long)c.commits,
		(unsigned long long)c.units_present);
	kprintf("  rescued %llu bytes, bad %llu bytes, non-tried %llu bytes, written %llu bytes\n",
		(unsigned long long)(t.sectors[4] * ls), (unsigned long long)(t.sectors[3] * ls),
		(unsigned long long)(t.sectors[0] * ls), (unsigned long long)(t.written * ls));
	const struct cow_map *m = cow_get_map(o->cow);
	kprintf("  map: %llu extents of at most %llu, %llu KiB of memory\n", (unsigned long long)m->n,
		(unsigned long long)m->max, (unsigned long long)(cow_map_bytes(m) / 1024));
}

static int cmd_cow(int argc, char **argv)
{
	if (argc < 2)
		return -E_USAGE;
	const char *sub = argv[1];
	if (!strcmp(sub, "format"))
		return cow_format_cmd(argc, argv);
	if (!strcmp(sub, "open"))
		return cow_open_cmd(argc, argv);
	if (!strcmp(sub, "upgrade"))
		return cow_upgrade_cmd(argc, argv);
	if (!strcmp(sub, "list")) {
		for (int i = 0; i < MAX_OV; i++)
			if (overlays[i].cow)
				kprintf("ov%d  source %s  cow %s\n", i, overlays[i].src.blk->name,
					overlays[i].dst.blk->name);
		return argc == 2 ? 0 : -E_USAGE;
	}
	if ((!strcmp(sub, "sync") || !strcmp(sub, "stats")) && argc <= 3) {
		int rc = 0;
		for (int i = 0; i < MAX_OV; i++) {
			if (!overlays[i].cow || (argc == 3 && find_overlay(argv[2]) != &overlays[i]))
				continue;
			if (sub[1] == 'y')
				rc = sync_one(&overlays[i], i) < 0 ? -E_IO : rc;
			else
				print_stats(&overlays[i], i);
		}
		if (argc == 3 && !find_overlay(argv[2])) {
			kprintf("no overlay '%s' (see cow list)\n", argv[2]);
			return cmd_said(-E_NOENT);
		}
		return rc;
	}
	if (!strcmp(sub, "close") && argc == 3) {
		struct overlay *o = find_overlay(argv[2]);
		if (!o) {
			kprintf("no overlay '%s' (see cow list)\n", argv[2]);
			return cmd_said(-E_NOENT);
		}
		if (o->job) {
			kprintf("%s has a rescue job: stop it and let it end first (quit)\n", argv[2]);
			return cmd_said(-E_BUSY);
		}
		int rc = ov_disk_detach(o);   /* its disk's requests end first */
		if (rc < 0)
			return rc;
		rc = cow_close(o->cow);   /* commits first */
		job_forget(o);
		rescue_domain_free(&o->next_domain);
		o->cow = NULL;
		overlay_refresh_source_flags();
		o->dst.blk->flags &= ~BLK_F_COW;
		log_event(LOG_INFO, "%s closed", argv[2]);
		return rc;
	}
	return -E_USAGE;
}
COMMAND(cow, "cow format <cow> <src> [unit=<bytes>] --yes | open <src> <cow> | close <ov> | sync [<ov>] | stats [<ov>] | list | upgrade <cow>",
	"cow partitions: format, open as an overlay, commit, counters",
	"format makes <cow> (a disk or partition) the cow of <src> (refused without --yes, or when too\n"
	"  small). open checks the cow belongs to <src> and binds them as ov0..ov7; the source is\n"
	"  read-only from then on, and ovN is also a disk (read, sum, bench: through the overlay,\n"
	"  writes into the cow). sync commits; close commits and detaches. upgrade rewrites an older\n"
	"  cow (format version 1 or 2) as the current one in place, crash-safely.\n"
	"Why the orders differ: format names first the disk it destroys, as wipe does, so a slip of\n"
	"  the fingers cannot format the failing source (that is refused anyway: --yes, and a source\n"
	"  already open is read-only); open reads like the overlay it makes, source then cow.", cmd_cow);

static int emit_console(void *ctx, const char *text, size_t len)
{
	(void)ctx;
	console_write(text, len);
	return 0;
}

static int cmd_map(int argc, char **argv)
{
	if (argc != 2)
		return -E_USAGE;
	struct overlay *o = find_overlay(argv[1]);
	if (!o) {
		kprintf("no overlay '%s' (see cow list)\n", argv[1]);
		return cmd_said(-E_NOENT);
	}
	char now[24], cmdline[64], msg[64];
	wall_text(now, sizeof(now));
	fmt_snprintf(cmdline, sizeof(cmdline), "map %s", argv[1]);
	/* The overlay's latest job, if any, gives the command line and the status line. */
	struct cow_progress p = { .message = msg };
	const char *job_cmd = job_progress(o, &p, msg, sizeof(msg));
	return cow_write_mapfile(o->cow, "cowboot " COWBOOT_VERSION, job_cmd ? job_cmd : cmdline,
				 o->start_time, now, job_cmd ? &p : NULL, emit_console, NULL);
}
COMMAND(map, "map <ov>", "the overlay's GNU ddrescue mapfile", NULL, cmd_map);

static void commit_all(void)
{
	jobs_stop_all();
	for (int i = 0; i < MAX_OV; i++)
		if (overlays[i].cow)
			sync_one(&overlays[i], i);
}
SHUTDOWN_HOOK(cow, commit_all);
