/* The report on the boot volume (docs/report.md): finds the FAT volume cowboot was loaded from
 * and writes cowboot/<date>-<machine serial>/ there through the block layer: events.log, each
 * open overlay's ddrescue mapfile and summary.txt. The space it needs is counted first, so a
 * full or damaged volume is reported and left as it was. */
#include "report.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "overlay.h"
#include "../kernel/power.h"
#include "../kernel/shell.h"
#include "../kernel/task.h"
#include "../kernel/time.h"
#include "../boot/bootinfo.h"
#include "../lib/errors.h"
#include "../fs/fat.h"
#include "../lib/port.h"

#define MAX_NOTES 32
#define MAX_BAD_LINES 200        /* bad areas listed in summary.txt; the mapfile has them all */
#define HEALTH_TIMEOUT_MS 2000   /* each disk's SMART / health log, so a hung disk cannot hold a report */

static struct fat_vol vol;
static uint8_t *work;
static int busy;
static char session[80];         /* <date>-<machine serial>, fixed by the first report */
static unsigned long long saved_seq;   /* log lines already in events.log */
static int events_written;
static char notes[MAX_NOTES][200];     /* jobs as they ended, for summary.txt */
static unsigned nnotes;
static int told_unavailable;

/* ---- text built in memory, then written whole --------------------------------------------- */

struct text { char *p; size_t len, cap; int err; };

static int text_add(void *ctx, const char *s, size_t n)
{
	struct text *t = ctx;
	if (t->err)
		return t->err;
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *p = krealloc(t->p, cap);
		if (!p)
			return t->err = -E_NOMEM;
		t->p = p;
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = 0;
	return 0;
}

static void tprintf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tprintf(struct text *t, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = fmt_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	text_add(t, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Serials and such as part of a file name: letters, digits, - _ . kept, others as '_'. */
static void name_part(char *out, size_t n, const char *s, const char *none)
{
	size_t k = 0;
	for (; *s && k + 1 < n; s++)
		out[k++] = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
				   *s == '-' || *s == '_' || *s == '.' ? *s : '_';
	while (k && (out[k - 1] == '.' || out[k - 1] == '_'))
		k--;
	out[k] = 0;
	if (!k)
		fmt_snprintf(out, n, "%s", none);
}

/* ---- the boot volume ---------------------------------------------------------------------- */

static int bd_read(void *ctx, uint64_t lba, uint32_t n, void *buf) { return blk_read(ctx, lba, n, buf, NULL); }
static int bd_write(void *ctx, uint64_t lba, uint32_t n, const void *buf) { return blk_write(ctx, lba, n, buf, NULL); }
static int bd_flush(void *ctx) { return blk_flush(ctx); }

static uint32_t guard_flags(const struct blk_dev *d)
{
	return (d->flags | (d->parent ? d->parent->flags : 0)) & (BLK_F_RO | BLK_F_SOURCE | BLK_F_DEV_RO | BLK_F_GONE);
}

/* A FAT partition of the boot disk (an ESP), else the whole disk (a FAT "superfloppy"). The
 * first that mounts is the volume; otherwise why says what the most FAT-like one lacked. */
static struct blk_dev *find_volume(char *why, size_t n, int *rc_out)
{
	struct blk_dev *disk = NULL;
	for (int i = 0; i < blk_count() && !disk; i++)
		if ((blk_get(i)->flags & BLK_F_BOOT) && !blk_get(i)->parent)
			disk = blk_get(i);
	if (!disk) {
		fmt_snprintf(why, n, "no boot disk (booted over the network, or from a disk no driver here drives)");
		*rc_out = -E_NOENT;
		return NULL;
	}
	if (guard_flags(disk)) {   /* protected as a whole: nothing on it is written, FAT or not */
		*rc_out = 1;
		return disk;
	}
	int best = -E_FOREIGN;
	fmt_snprintf(why, n, "no FAT file system on the boot disk %s or its partitions", disk->name);
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < blk_count(); i++) {
			struct blk_dev *d = blk_get(i);
			if (pass == 0 ? d->parent != disk : d != disk)
				continue;
			if (d->flags & BLK_F_GONE)
				continue;
			struct fat_dev fd = { d, d->lsize, d->sectors, bd_read,
					      guard_flags(d) ? NULL : bd_write, bd_flush };
			int rc = fat_mount(&vol, &fd, work);
			if (rc == 0)
				return d;
			if (rc != -E_FOREIGN && best == -E_FOREIGN) {
				best = rc;
				fmt_snprintf(why, n, "the boot volume %s cannot be used: %s", d->name,
					     vol.why[0] ? vol.why : err_str(rc));
			}
		}
	}
	*rc_out = best == -E_FOREIGN ? -E_NOENT : best;
	return NULL;
}

/* The session's directory name: the wall clock at boot and the machine's serial (SMBIOS
 * System Information; "unknown" without one). */
static void session_name(struct fat_vol *v)
{
	const struct boot_info *bi = boot_info_get();
	char serial[40];
	name_part(serial, sizeof(serial), bi->machine_serial, "unknown");
	if (bi->wall_valid)
		fmt_snprintf(session, sizeof(session), "%04u%02u%02u-%02u%02u%02u-%s", bi->wall_year,
			     bi->wall_month, bi->wall_day, bi->wall_hour, bi->wall_minute, bi->wall_second, serial);
	else
		fmt_snprintf(session, sizeof(session), "undated-%s", serial);
	/* A directory of that name from an earlier boot (no clock, or two boots in one second) is
	 * that boot's: this one takes the next free suffix. */
	struct fat_entry e;
	size_t n = strlen(session);
	if (fat_lookup(v, fat_root(v), "cowboot", &e) == 0 && (e.attr & 0x10)) {
		struct fat_dir top = { e.cluster };
		for (int k = 2; k < 1000 && fat_lookup(v, top, session, &e) == 0; k++)
			fmt_snprintf(session + n, sizeof(session) - n, "-%d", k);
	}
}

/* ---- the files ---------------------------------------------------------------------------- */

struct rfile {
	char name[64];
	struct text t;
	char mode;
};

static void events_text(struct rfile *f, unsigned long long *upto)
{
	unsigned long long end = log_seq(), s = events_written ? saved_seq : 0;
	fmt_snprintf(f->name, sizeof(f->name), "events.log");
	f->mode = events_written ? 'a' : 'w';
	for (; s < end; s++) {
		const char *l = log_line(s);
		if (!l) {   /* the ring moved on before this report: say how much is missing */
			unsigned long long first = s;
			while (s < end && !log_line(s))
				s++;
			tprintf(&f->t, "[... %llu lines of the event log were overwritten before they could be saved]\n",
				s - first);
			s--;
			continue;
		}
		tprintf(&f->t, "%s\n", l);
	}
	*upto = end;
}

static void mapfile_text(struct rfile *f, struct overlay *o, int idx)
{
	char serial[40], now[24], msg[64], cmdline[32];
	name_part(serial, sizeof(serial), o->src.blk->serial, "noserial");
	fmt_snprintf(f->name, sizeof(f->name), "ov%d-%s.map", idx, serial);
	f->mode = 'w';
	wall_text(now, sizeof(now));
	fmt_snprintf(cmdline, sizeof(cmdline), "report (ov%d)", idx);
	struct cow_progress p = { .message = msg };
	const char *job_cmd = job_progress(o, &p, msg, sizeof(msg));
	int rc = cow_write_mapfile(o->cow, "cowboot " COWBOOT_VERSION, job_cmd ? job_cmd : cmdline, o->start_time,
				   now, job_cmd ? &p : NULL, text_add, &f->t);
	if (rc < 0 && !f->t.err)
		f->t.err = rc;
}

static void size_text(char *out, size_t n, uint64_t bytes)
{
	blk_format_size(out, (int)n, bytes);
}

static void summary_text(struct rfile *f, const char *why, const struct blk_dev *volume)
{
	const struct boot_info *bi = boot_info_get();
	struct text *t = &f->t;
	char now[24], sz[24];
	fmt_snprintf(f->name, sizeof(f->name), "summary.txt");
	f->mode = 'w';
	wall_text(now, sizeof(now));
	tprintf(t, "cowboot report\n\n");
	tprintf(t, "written:  %s (%s)\n", now, why);
	if (bi->wall_valid)
		tprintf(t, "booted:   %04u-%02u-%02u %02u:%02u:%02u, up %llu s\n", bi->wall_year, bi->wall_month,
			bi->wall_day, bi->wall_hour, bi->wall_minute, bi->wall_second,
			(unsigned long long)(time_now_us() / 1000000));
	else
		tprintf(t, "booted:   (no firmware clock), up %llu s\n", (unsigned long long)(time_now_us() / 1000000));
	tprintf(t, "version:  cowboot %s, firmware %s rev 0x%x\n", COWBOOT_VERSION, bi->fw_vendor, bi->fw_revision);
	tprintf(t, "machine:  %s%s%s%sserial %s\n", bi->machine_vendor, bi->machine_vendor[0] ? " " : "",
		bi->machine_product, bi->machine_vendor[0] || bi->machine_product[0] ? ", " : "",
		bi->machine_serial[0] ? bi->machine_serial : "unknown");
	tprintf(t, "volume:   %s (FAT%d%s%s%s), cowboot/%s/\n", volume->name, vol.type, vol.label[0] ? " \"" : "",
		vol.label, vol.label[0] ? "\"" : "", session);

	tprintf(t, "\ndisks:\n");
	for (int i = 0; i < blk_count(); i++) {
		const struct blk_dev *d = blk_get(i);
		size_text(sz, sizeof(sz), d->sectors * d->lsize);
		tprintf(t, "  %-8s %10s  %u/%u  %-6s model '%s' serial '%s'%s%s%s%s%s%s\n", d->name, sz, d->lsize,
			d->psize, d->transport, d->model, d->serial, d->flags & BLK_F_BOOT ? " boot" : "",
			d->flags & BLK_F_SOURCE ? " source" : "", d->flags & BLK_F_COW ? " cow" : "",
			d->flags & BLK_F_GONE ? " gone" : "", d->flags & (BLK_F_RO | BLK_F_DEV_RO) ? " ro" : "",
			d->flags & BLK_F_TARGET ? " target" : "");
		if (d->parent)
			continue;
		const struct blk_counters *c = &d->ctr;
		tprintf(t, "           reads %llu, writes %llu, errors %llu, timeouts %llu, resets %llu\n",
			(unsigned long long)c->reads, (unsigned long long)c->writes, (unsigned long long)c->errors,
			(unsigned long long)c->timeouts, (unsigned long long)c->resets);
		struct blk_health health;
		int rc = d->ops->health ? d->ops->health((struct blk_dev *)d, &health, HEALTH_TIMEOUT_MS) : 1;
		if (rc == 1)
			tprintf(t, "           health: not offered by %s\n", d->transport);
		else if (rc < 0)
			tprintf(t, "           health: not read (%s)\n", err_str(rc));
		else
			tprintf(t, "           %s\n", health.detail);
	}

	tprintf(t, "\noverlays:\n");
	int any = 0;
	for (int i = 0; i < MAX_OV; i++) {
		struct overlay *o = overlay_get(i);
		if (!o)
			continue;
		any = 1;
		const struct cow_map *m = cow_get_map(o->cow);
		struct cow_totals tt;
		cow_map_totals(m, &tt);
		uint32_t ls = o->src.blk->lsize;
		uint64_t all = 0;
		for (int k = 0; k < 5; k++)
			all += tt.sectors[k];
		char res[24], tot[24], bad[24];
		size_text(res, sizeof(res), tt.sectors[4] * ls);
		size_text(tot, sizeof(tot), all * ls);
		size_text(bad, sizeof(bad), tt.sectors[3] * ls);
		tprintf(t, "  ov%d: source %s (model '%s', serial '%s'), cow %s (serial '%s'), opened %s\n", i,
			o->src.blk->name, o->src.blk->model, o->src.blk->serial, o->dst.blk->name,
			o->dst.blk->serial, o->start_time);
		char msg[64];
		struct cow_progress p = { .message = msg };
		const char *cmd = job_progress(o, &p, msg, sizeof(msg));
		tprintf(t, "    job: %s%s%s\n", cmd ? cmd : "none since it was opened", cmd ? ": " : "", cmd ? msg : "");
		tprintf(t, "    rescued %s of %s (%llu.%llu%%), bad %s in %llu areas\n", res, tot,
			(unsigned long long)(all ? tt.sectors[4] * 100 / all : 100),
			(unsigned long long)(all ? tt.sectors[4] * 1000 / all % 10 : 0), bad,
			(unsigned long long)tt.areas[3]);
		tprintf(t, "    bytes non-tried %llu, non-trimmed %llu, non-scraped %llu, bad %llu, finished %llu\n",
			(unsigned long long)(tt.sectors[0] * ls), (unsigned long long)(tt.sectors[1] * ls),
			(unsigned long long)(tt.sectors[2] * ls), (unsigned long long)(tt.sectors[3] * ls),
			(unsigned long long)(tt.sectors[4] * ls));
		unsigned listed = 0;
		for (const struct cow_extent *x = cow_map_get(m, 0); x; x = cow_map_next(m, x)) {
			if (x->state != COW_BAD)
				continue;
			if (listed++ == MAX_BAD_LINES)
				continue;
			if (listed == 1)
				tprintf(t, "    bad areas (byte position, size):\n");
			tprintf(t, "      0x%08llX  0x%08llX\n", (unsigned long long)(x->start * ls),
				(unsigned long long)(x->count * ls));
		}
		if (listed > MAX_BAD_LINES)
			tprintf(t, "      ... and %u more (all of them in the mapfile)\n", listed - MAX_BAD_LINES);
		char serial[40];
		name_part(serial, sizeof(serial), o->src.blk->serial, "noserial");
		tprintf(t, "    mapfile: ov%d-%s.map\n", i, serial);
	}
	if (!any)
		tprintf(t, "  none open\n");

	tprintf(t, "\njobs and wipes, as they ended:\n");
	for (unsigned i = nnotes > MAX_NOTES ? nnotes - MAX_NOTES : 0; i < nnotes; i++)
		tprintf(t, "  %s\n", notes[i % MAX_NOTES]);
	if (!nnotes)
		tprintf(t, "  none\n");
	tprintf(t, "\nevents.log holds the event log (times in seconds since boot).\n");
}

/* Clusters a file of `len` bytes takes beyond what its current version holds. */
static uint32_t grow_clusters(struct fat_dir d, bool have_dir, const struct rfile *f)
{
	struct fat_entry e;
	uint64_t old = 0;
	if (have_dir && fat_lookup(&vol, d, f->name, &e) == 0)
		old = e.size;
	uint64_t size = f->mode == 'a' ? old + f->t.len : f->t.len;
	uint64_t now = (old + vol.cbytes - 1) / vol.cbytes, then = (size + vol.cbytes - 1) / vol.cbytes;
	return then > now ? (uint32_t)(then - now) : 0;
}

static int write_report(const char *why, int quiet)
{
	char reason[200];
	int rc = 0;
	if (!work && !(work = kmalloc(FAT_WORK_BYTES)))
		return -E_NOMEM;
	struct blk_dev *d = find_volume(reason, sizeof(reason), &rc);
	if (d && guard_flags(d)) {   /* the boot disk (rc 1), or the partition that mounted */
		uint32_t g = guard_flags(d);
		fmt_snprintf(reason, sizeof(reason), "the boot volume %s is %s", d->name,
			     g & BLK_F_SOURCE ? "an overlay's source (read-only)" :
			     g & BLK_F_DEV_RO ? "write-protected" : g & BLK_F_GONE ? "gone" : "read-only (protect)");
		rc = -E_RDONLY;
		d = NULL;
	}
	if (!d) {
		if (!quiet || !told_unavailable)
			log_event(quiet ? LOG_INFO : LOG_WARN, "report not written: %s", reason);
		told_unavailable = 1;
		return rc;
	}
	if (!session[0])
		session_name(&vol);
	struct wall_time w;
	time_wall(&w);
	fat_set_time(&vol, w.year, w.month, w.day, w.hour, w.minute, w.second);

	/* Everything in memory first: the space it takes is known before anything is written. */
	enum { NFILES = 2 + MAX_OV };
	struct rfile *files = kzalloc(sizeof(*files) * NFILES);
	if (!files)
		return -E_NOMEM;
	unsigned nf = 0;
	unsigned long long upto;
	events_text(&files[nf++], &upto);
	for (int i = 0; i < MAX_OV; i++)
		if (overlay_get(i))
			mapfile_text(&files[nf++], overlay_get(i), i);
	summary_text(&files[nf++], why, d);
	for (unsigned i = 0; i < nf && !rc; i++)
		rc = files[i].t.err;
	if (rc < 0) {
		log_event(LOG_WARN, "report not written: building %s: %s", files[0].name, err_str(rc));
		goto out;
	}
	struct fat_entry e;
	struct fat_dir top = fat_root(&vol), dir = { 0 };
	bool have_top = fat_lookup(&vol, top, "cowboot", &e) == 0, have_dir = false;
	if (have_top) {
		top.cluster = e.cluster;
		have_dir = fat_lookup(&vol, top, session, &e) == 0;
		dir.cluster = e.cluster;
	}
	uint64_t need = (have_top ? 0 : 1) + (have_dir ? 0 : 1) + 1;   /* + a directory growing */
	for (unsigned i = 0; i < nf; i++)
		need += grow_clusters(dir, have_dir, &files[i]);
	if (need > vol.free_count) {
		char nb[24], fb[24];
		size_text(nb, sizeof(nb), need * vol.cbytes);
		size_text(fb, sizeof(fb), (uint64_t)vol.free_count * vol.cbytes);
		log_event(LOG_WARN, "report not written: the boot volume %s is full (the report needs %s, %s free); nothing was changed on it",
			  d->name, nb, fb);
		rc = -E_NOSPC;
		goto out;
	}
	if ((rc = fat_mkdir(&vol, fat_root(&vol), "cowboot", &top)) < 0 || (rc = fat_mkdir(&vol, top, session, &dir)) < 0)
		goto failed;
	for (unsigned i = 0; i < nf; i++)
		if ((rc = fat_write_file(&vol, dir, files[i].name, files[i].t.p ? files[i].t.p : "",
					 (uint32_t)files[i].t.len, files[i].mode)) < 0)
			goto failed;
	if ((rc = fat_sync(&vol)) < 0)
		goto failed;
	saved_seq = upto;
	events_written = 1;
	char list[160];
	int k = fmt_snprintf(list, sizeof(list), "%s", files[0].name);
	for (unsigned i = 1; i < nf && k < (int)sizeof(list); i++)
		k += fmt_snprintf(list + k, sizeof(list) - (size_t)k, ", %s", files[i].name);
	log_event(LOG_INFO, "report written to %s: cowboot/%s/ (%s)", d->name, session, list);
	goto out;
failed:
	log_event(LOG_ERR, "report: writing to %s failed: %s", d->name, vol.why[0] ? vol.why : err_str(rc));
	fat_sync(&vol);
out:
	for (unsigned i = 0; i < nf; i++)
		kfree(files[i].t.p);
	kfree(files);
	return rc;
}

static int report_run(const char *why, int quiet)
{
	while (busy)   /* a job's report and the command's: one at a time */
		task_yield();
	busy = 1;
	int rc = write_report(why, quiet);
	busy = 0;
	return rc;
}

int report_write(const char *why)
{
	return report_run(why, 0);
}

void report_job_ended(const char *summary)
{
	fmt_snprintf(notes[nnotes++ % MAX_NOTES], sizeof(notes[0]), "%s", summary);
	report_run("a job ended", 1);
}

static int cmd_report(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return -E_USAGE;
	return report_write("report command");
}
COMMAND(report, "report", "write the event log, the overlays' mapfiles and a summary to the boot volume",
	"Writes cowboot/<date>-<machine serial>/ on the FAT volume cowboot was loaded from: events.log,\n"
	"  <ov>-<source serial>.map for each open overlay, summary.txt. Also done when a job ends and at\n"
	"  poweroff/reboot. A full, damaged or read-only volume is reported and left as it was.", cmd_report);

static void shutdown_report(void)
{
	report_run("power-off or reboot", 1);
}
SHUTDOWN_HOOK(report, shutdown_report);
