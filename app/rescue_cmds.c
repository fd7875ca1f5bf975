/* Rescue and clone jobs: each runs rescue/rescue.c on a task of its own over one overlay, so the
 * console stays usable; commands rescue, clone, status, wait, stop, wake, quit, disk, domain,
 * reset. A job pauses when its source stops answering and resumes when the same disk is back. */
#include "../kernel/console.h"
#include "../rescue/rescue_args.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/fbcon.h"
#include "overlay.h"
#include "report.h"
#include "../kernel/settings.h"
#include "../kernel/shell.h"
#include "../kernel/task.h"
#include "../kernel/time.h"
#include "../lib/errors.h"
#include "../lib/port.h"

/* A waiting job says which of its disks is gone: the source, or the disk its cow is on. */
enum job_state { JOB_RUNNING, JOB_STOPPED, JOB_WAIT_SOURCE, JOB_WAIT_COW, JOB_DONE, JOB_FAILED };
static const char *const state_names[] = { "running", "stopped", "waiting for the source", "waiting for the cow",
					   "finished", "failed" };

struct job {
	struct overlay *o;
	int idx, used, alive;
	enum job_state state;
	struct rescue r;
	struct rescue_opts opt;
	struct rescue_domain dom;     /* the job's own copy: opt.domain points here */
	struct bdev_adapter target;
	int clone;
	int stop_req, end_req, wake_req, rebound, commit_req;
	int commit_rc;
	uint64_t commits_done;
	int result;
	uint64_t started_us, bytes_total, reads_total, failed_total;
	char cmdline[128];
	char summary[200];            /* the last summary line, for the report */
};

static struct job jobs[MAX_OV];

/* A cooperative lock: the job holds its overlay while it reads or checks the source; the
 * shell's commands that touch the cow take it too. */
static int ov_busy[MAX_OV];
static void ov_lock(const struct overlay *o)
{
	while (ov_busy[overlay_index(o)])
		task_yield();
	ov_busy[overlay_index(o)] = 1;
}
static void ov_unlock(const struct overlay *o)
{
	ov_busy[overlay_index(o)] = 0;
}

int overlay_try_lock(const struct overlay *o)
{
	if (ov_busy[overlay_index(o)])
		return -E_BUSY;
	ov_busy[overlay_index(o)] = 1;
	return 0;
}

void overlay_unlock(const struct overlay *o)
{
	ov_unlock(o);
}

/* ---- the job task ------------------------------------------------------------------------ */

static int job_should_stop(void *ctx)
{
	struct job *j = ctx;
	if (j->commit_req) {
		j->commit_rc = cow_sync(j->o->cow);
		j->commit_req = 0;
		j->commits_done++;
	}
	return j->stop_req || j->end_req;
}

static void job_event(void *ctx, const char *text)
{
	struct job *j = ctx;
	log_event(LOG_INFO, "ov%d: %s", j->idx, text);
}

static void fmt_size(char *out, size_t n, uint64_t bytes)
{
	blk_format_size(out, (int)n, bytes);
}

static void summary(struct job *j, const char *what)
{
	uint64_t b[5], a[5];
	char res[24], tot[24], bad[24], rate[24];
	rescue_domain_totals(&j->r, b, a);
	uint64_t all = b[0] + b[1] + b[2] + b[3] + b[4];
	uint64_t secs = (time_now_us() - j->started_us) / 1000000;
	fmt_size(res, sizeof(res), b[4]);
	fmt_size(tot, sizeof(tot), all);
	fmt_size(bad, sizeof(bad), b[3]);
	fmt_size(rate, sizeof(rate), secs ? j->bytes_total / secs : j->bytes_total);
	fmt_snprintf(j->summary, sizeof(j->summary), "ov%d: %s %s in %llu s: rescued %s of %s (%llu.%llu%%), bad %s in %llu areas, non-tried %llu bytes, average %s/s",
		  j->idx, j->clone ? "clone" : "rescue", what, (unsigned long long)secs, res, tot,
		  (unsigned long long)(all ? b[4] * 100 / all : 100),
		  (unsigned long long)(all ? b[4] * 1000 / all % 10 : 0), bad, (unsigned long long)a[3],
		  (unsigned long long)(b[0] + b[1] + b[2]), rate);
	log_event(LOG_INFO, "%s", j->summary);
	const struct rescue_stats *st = &j->r.st;
	if (st->pattern[0])
		log_event(LOG_INFO, "ov%d: head map: %s; %llu bad bands, %llu of them predicted", j->idx, st->pattern,
			  (unsigned long long)st->bands, (unsigned long long)st->bands_predicted);
}

/* Waits for the same source to answer again: the driver re-probed while it is gone, then the
 * identity (and a readable sample) checked. 0 to resume; -E_STOPPED when asked to stop. */
static int wait_for_source(struct job *j)
{
	struct overlay *o = j->o;
	char why[200], last[200] = "";
	deadline_t next = 0;
	for (;;) {
		if (j->stop_req || j->end_req)
			return -E_STOPPED;
		if (j->rebound || j->wake_req) {
			log_event(LOG_INFO, "ov%d: resuming (%s)", j->idx, j->rebound ? "source re-bound" : "woken");
			j->rebound = j->wake_req = 0;
			return 0;
		}
		if (deadline_passed(next)) {
			next = deadline_in_ms(2000);
			ov_lock(o);
			int rc = blk_reprobe(o->src.blk);
			if (rc == 0)
				rc = cow_check_source(o->cow, &o->src.bdev, why, sizeof(why));
			ov_unlock(o);
			if (rc == 0) {
				log_event(LOG_INFO, "ov%d: source %s answers again with the same identity; resuming",
					  j->idx, o->src.blk->name);
				return 0;
			}
			if (rc == -E_IDENTITY && strcmp(why, last)) {
				log_event(LOG_WARN, "ov%d: %s is not this overlay's source, refused: %s", j->idx,
					  o->src.blk->name, why);
				memcpy(last, why, sizeof(last));
			}
		}
		task_sleep_us(50000);
	}
}

/* Waits for the cow's disk (an NBD export whose server went away) to answer again: nothing its
 * map records was lost, since a block is recorded only once its write has ended. 0 to resume. */
static int wait_for_cow(struct job *j)
{
	struct overlay *o = j->o;
	deadline_t next = 0;
	for (;;) {
		if (j->stop_req || j->end_req)
			return -E_STOPPED;
		if (j->wake_req) {   /* wake: look again now */
			j->wake_req = 0;
			next = 0;
		}
		if (deadline_passed(next)) {
			next = deadline_in_ms(2000);
			if (blk_reprobe(o->dst.blk) == 0) {
				log_event(LOG_INFO, "ov%d: cow %s answers again; resuming", j->idx, o->dst.blk->name);
				return 0;
			}
		}
		task_sleep_us(50000);
	}
}

/* A clone starts by copying what the cow already holds, so the target ends complete. */
static int clone_existing(struct job *j)
{
	struct overlay *o = j->o;
	const struct cow_map *m = cow_get_map(o->cow);
	uint32_t ls = o->src.blk->lsize;
	uint64_t bufsize = j->opt.max_read > j->opt.cluster ? j->opt.max_read : j->opt.cluster;
	uint64_t sectors = m->sectors, p = 0, chunk = bufsize / ls;   /* the rescue's whole buffer */
	while (p < sectors) {
		const struct cow_extent *x = cow_map_at(m, p);
		uint64_t end = x->start + x->count;
		if (x->state == COW_FINISHED) {
			for (uint64_t s = p; s < end; s += chunk) {
				uint64_t n = end - s < chunk ? end - s : chunk, bad;
				if (j->stop_req || j->end_req)
					return -E_STOPPED;
				int rc = cow_ov_read(o->cow, s * ls, n * ls, j->r.buf, &bad);
				if (rc < 0)
					return rc;
				rc = cow_bdev_write(&j->target.bdev, s * ls, (uint32_t)(n * ls), j->r.buf);
				if (rc < 0) {
					j->r.target_rc = rc;
					j->r.target_off = s * ls;
					return -E_TARGET;
				}
				j->r.st.clone_bytes += n * ls;
			}
		}
		p = end;
	}
	return 0;
}

static void job_main(void *arg)
{
	struct job *j = arg;
	struct overlay *o = j->o;
	int first = 1, rc;
	for (;;) {
		j->state = JOB_RUNNING;
		struct rescue_hooks h = { .ctx = j, .should_stop = job_should_stop, .event = job_event };
		if (j->clone)
			h.target = &j->target.bdev;
		ov_lock(o);
		o->src.timeout_ms = j->opt.timeout_ms;
		rc = rescue_init(&j->r, o->cow, &kernel_env, &j->opt, &h);
		if (rc == 0 && first && j->clone)
			rc = clone_existing(j);
		first = 0;
		if (rc == 0)
			rc = rescue_run(&j->r);
		o->src.timeout_ms = 0;
		ov_unlock(o);
		rescue_free(&j->r);
		j->bytes_total += j->r.st.bytes_ok;
		j->reads_total += j->r.st.reads;
		j->failed_total += j->r.st.failed_reads;
		if (rc == 0) {
			j->state = JOB_DONE;
			summary(j, "finished");
			break;
		}
		if (rc == -E_GONE) {
			j->state = JOB_WAIT_SOURCE;
			log_event(LOG_WARN, "ov%d: source %s is not answering; the job waits for it (or: disk ov%d <disk>, wake ov%d)",
				  j->idx, o->src.blk->name, j->idx, j->idx);
			if (wait_for_source(j) == 0)
				continue;
			rc = -E_STOPPED;
		}
		/* Whatever failed (a store, a commit): a cow write that never ended is retried, and
		 * nothing was recorded for it. */
		if (rc < 0 && rc != -E_STOPPED && (o->dst.blk->flags & BLK_F_GONE)) {
			j->state = JOB_WAIT_COW;
			log_event(LOG_WARN, "ov%d: cow %s is gone; the job waits for it", j->idx, o->dst.blk->name);
			if (wait_for_cow(j) == 0)
				continue;
			rc = -E_STOPPED;
		}
		if (rc == -E_STOPPED) {
			j->state = JOB_STOPPED;
			if (j->end_req)
				break;
			log_event(LOG_INFO, "ov%d: stopped at byte %llu, progress committed (wake ov%d goes on)",
				  j->idx, (unsigned long long)j->r.st.pos, j->idx);
			j->stop_req = 0;
			while (!j->wake_req && !j->end_req)
				task_sleep_us(50000);
			if (j->end_req)
				break;
			j->wake_req = 0;
			log_event(LOG_INFO, "ov%d: resumed", j->idx);
			continue;
		}
		j->state = JOB_FAILED;
		j->result = rc;
		if (rc == -E_TARGET)
			log_event(LOG_ERR, "ov%d: clone target %s failed at byte %llu (%s); the clone stopped, the cow is unharmed",
				  j->idx, j->target.blk->name, (unsigned long long)j->r.target_off, err_str(j->r.target_rc));
		else
			log_event(LOG_ERR, "ov%d: the job stopped: %s", j->idx, err_str(rc));
		summary(j, "failed");
		break;
	}
	if (j->state == JOB_STOPPED)
		summary(j, "stopped");
	if (j->clone)
		j->target.blk->flags &= ~BLK_F_TARGET;
	o->job = NULL;
	report_job_ended(j->summary);
	j->alive = 0;
}

/* ---- commands ----------------------------------------------------------------------------- */

static void end_job(struct job *j)
{
	j->end_req = 1;
	while (j->alive)
		task_yield();
}

void jobs_stop_all(void)
{
	for (int i = 0; i < MAX_OV; i++)
		if (jobs[i].alive)
			end_job(&jobs[i]);
}

int overlay_commit(struct overlay *o)
{
	struct job *j = o->job;
	if (j && j->state == JOB_RUNNING) {
		uint64_t n = j->commits_done;
		j->commit_req = 1;
		while (j->commits_done == n && j->alive && j->state == JOB_RUNNING)
			task_yield();
		if (j->commits_done != n)
			return j->commit_rc;
	}
	ov_lock(o);
	int rc = cow_sync(o->cow);
	ov_unlock(o);
	return rc;
}

const char *job_progress(const struct overlay *o, struct cow_progress *p, char *msg, size_t n)
{
	static const char status[] = { COW_NONTRIED, COW_NONTRIMMED, COW_NONSCRAPED, COW_BAD, COW_FINISHED };
	const struct job *j = &jobs[overlay_index(o)];
	if (!j->used || j->o != o)
		return NULL;
	const struct rescue_stats *st = &j->r.st;
	const char *dir = st->dir < 0 ? "backwards" : "forwards";
	p->pos = st->pos;
	p->status = status[st->phase];
	p->pass = st->pass ? st->pass : 1;
	switch (st->phase) {
	case RP_COPY: fmt_snprintf(msg, n, "Copying non-tried blocks... Pass %u (%s)", p->pass, dir); break;
	case RP_TRIM: fmt_snprintf(msg, n, "Trimming failed blocks... (%s)", dir); break;
	case RP_SCRAPE: fmt_snprintf(msg, n, "Scraping failed blocks... (%s)", dir); break;
	case RP_RETRY: fmt_snprintf(msg, n, "Retrying bad sectors... Retry %u (%s)", p->pass, dir); break;
	default: fmt_snprintf(msg, n, "Finished"); break;
	}
	return j->cmdline;
}

void job_forget(const struct overlay *o)
{
	struct job *j = &jobs[overlay_index(o)];
	if (j->used)
		rescue_domain_free(&j->dom);
	j->used = 0;
}

static struct job *find_job(const char *name)
{
	struct overlay *o = overlay_find(name);
	if (!o)
		return NULL;
	struct job *j = &jobs[overlay_index(o)];
	if (!j->used) {
		kprintf("%s has no job (rescue %s starts one)\n", name, name);
		return NULL;
	}
	return j;
}

/* A domain spec into d (initialised here): `all` and `lba:` (rescue/rescue.c), `ntfs` and
 * `ntfs:<glob>` (app/ntfs_cmds.c, which reads the volumes through the overlay). */
static int parse_domain_spec(struct overlay *o, struct rescue_domain *d, const char *spec, char *why, size_t n)
{
	rescue_domain_init(d, &kernel_env);
	if (strcmp(spec, "ntfs") && strncmp(spec, "ntfs:", 5))
		return rescue_parse_domain(d, spec, o->src.blk->sectors, why, n);
	if (spec[4] == ':' && !spec[5]) {
		fmt_snprintf(why, n, "ntfs: needs a glob (ntfs:*.jpg, ntfs:/Users/*/Documents/*)");
		return -E_USAGE;
	}
	if (overlay_try_lock(o) < 0) {
		fmt_snprintf(why, n, "the overlay's job is running; stop it first");
		return -E_BUSY;
	}
	why[0] = '\0';
	int rc = ntfs_domain_build(o, spec[4] == ':' ? spec + 5 : NULL, d, why, n);
	overlay_unlock(o);
	return rc;
}

static int start_job(int argc, char **argv, int clone)
{
	int nfixed = clone ? 2 : 1;   /* <ov>, and the clone's <disk> */
	if (argc < nfixed + 1)
		return -E_USAGE;
	struct overlay *o = overlay_find(argv[1]);
	if (!o)
		return -E_NOENT;
	int idx = overlay_index(o);
	struct job *j = &jobs[idx];
	struct rescue_args args;
	struct opts_result res;
	char why[160] = "";
	uint32_t ls = o->src.blk->lsize;
	int orc = rescue_args_parse(&args, ls, argc - 1, argv + 1, nfixed, &res);
	if (orc == 0 && res.npos != nfixed)
		return -E_USAGE;
	if (orc < 0) {
		kprintf("%s: %s\n", argv[0], res.why);
		return cmd_said(orc);
	}
	struct rescue_opts opt = args.opt;
	const char *dspec = args.domain;
	const char *target_name = clone ? argv[1 + res.pos[1]] : NULL;
	if (opt.cluster % o->src.blk->psize && o->src.blk->psize <= opt.cluster) {
		kprintf("%s: cluster must be a multiple of the source's %u-byte physical sector\n", argv[0],
			o->src.blk->psize);
		return cmd_said(-E_USAGE);
	}
	struct blk_dev *target = NULL;
	if (clone) {
		target = blk_find(target_name);
		if (!target)
			return -E_NOENT;
		struct blk_dev *tt = blk_drive(target), *st = blk_drive(o->src.blk), *ct = blk_drive(o->dst.blk);
		/* The target of this overlay's own stopped clone may be taken again: that job gives way. */
		uint32_t mine = j->alive && j->clone && (j->target.blk == target || j->target.blk == tt) ? BLK_F_TARGET : 0;
		/* ... nor the overlay's own disk (ovN): the job would wait on itself. */
		if (tt == st || tt == ct || ((tt->flags & BLK_F_OVERLAY) && !strcmp(tt->name, argv[1])) ||
		    ((target->flags | tt->flags) & ~mine &
		     (BLK_F_RO | BLK_F_SOURCE | BLK_F_COW | BLK_F_BOOT | BLK_F_DEV_RO | BLK_F_TARGET))) {
			kprintf("clone: %s cannot be the target (it is the source, a cow, the boot disk, read-only, "
				"or another clone's target)\n", target->name);
			return cmd_said(-E_INVAL);
		}
		if (target->lsize != ls || target->sectors < o->src.blk->sectors) {
			kprintf("clone: %s is smaller than the source or has another sector size (%u, source %u)\n",
				target->name, target->lsize, ls);
			return cmd_said(-E_TOOSMALL);
		}
	}
	/* The job's domain: domain= for this run, else the overlay's (`domain`), copied so that a
	 * later `domain` changes only the next run. */
	struct rescue_domain dom;
	int drc = dspec ? parse_domain_spec(o, &dom, dspec, why, sizeof(why))
			: rescue_domain_copy(&dom, &o->next_domain);
	if (drc < 0) {
		kprintf("%s: %s\n", argv[0], dspec ? why : err_str(drc));
		return drc;
	}
	if (!clone) {
		/* Before it starts: how far the map can grow here (at worst 16 bytes an extent in
		 * memory, cow/map.c) and in the cow's metadata. */
		struct mem_stats ms;
		mem_get_stats(&ms);
		const struct cow_map *m = cow_get_map(o->cow);
		uint64_t mem_ext = m->n + (ms.free_bytes + (ms.heap_size - ms.heap_used)) / 16;
		kprintf("%s: the map holds %llu extents; memory allows about %llu, the cow %llu\n", argv[0],
			(unsigned long long)m->n, (unsigned long long)mem_ext, (unsigned long long)m->max);
	}
	if (j->alive) {
		if (j->state == JOB_RUNNING || j->state == JOB_WAIT_SOURCE || j->state == JOB_WAIT_COW) {
			kprintf("%s: ov%d already has a %s job (%s); stop it first\n", argv[0], idx,
				j->clone ? "clone" : "rescue", state_names[j->state]);
			rescue_domain_free(&dom);
			return -E_BUSY;
		}
		end_job(j);   /* a stopped job gives way to the new one: the map holds its progress */
	}
	if (j->used)
		rescue_domain_free(&j->dom);
	memset(j, 0, sizeof(*j));
	j->o = o;
	j->idx = idx;
	j->dom = dom;
	j->opt = opt;
	j->opt.domain = &j->dom;
	j->clone = clone;
	if (clone) {
		bdev_adapt(&j->target, target);
		target->flags |= BLK_F_TARGET;   /* until the job's task ends */
	}
	j->started_us = time_now_us();
	size_t used = 0;
	for (int i = 0; i < argc && used + 2 < sizeof(j->cmdline); i++)
		used += (size_t)fmt_snprintf(j->cmdline + used, sizeof(j->cmdline) - used, "%s%s", i ? " " : "", argv[i]);
	j->used = j->alive = 1;
	o->job = j;
	if (!task_spawn(clone ? "clone" : "rescue", job_main, j)) {
		if (clone)
			target->flags &= ~BLK_F_TARGET;
		rescue_domain_free(&j->dom);
		j->used = j->alive = 0;
		o->job = NULL;
		return -E_NOMEM;
	}
	kprintf("ov%d: %s started (timeout %u ms, cluster %llu, retries %u%s); status, wait, stop ov%d\n", idx,
		clone ? "clone" : "rescue", opt.timeout_ms, (unsigned long long)opt.cluster, opt.retries,
		dom.n ? ", domain" : "", idx);
	return 0;
}

static int cmd_rescue(int argc, char **argv)
{
	return start_job(argc, argv, 0);
}
COMMAND(rescue, "rescue <ov> [retries=N] [cluster=B] [max-read=B] [skip=B[,B]] [reverse] [timeout=ms] [min-rate=B] [passes=L] [infer=on|off] [commit=ms] [domain=D]",
	"copy everything readable from the source into the cow, in the background",
	"Phases (rescue.md): copy (pass 1 learns the bad bands and skips them, the next passes\n"
	"  read inward from finished data), trim, scrape, the insides of large bad areas, retry.\n"
	"  Options, with their defaults:\n"
	"  retries=1       passes over bad sectors at the end\n"
	"  cluster=64KiB   bytes per copy read after trouble, and the unit failures are marked in\n"
	"  max-read=1MiB   the first pass's reads grow to this while they succeed\n"
	"  skip=64KiB[,max] first skip after an error; doubles while errors go on (max: 1/64 of the disk)\n"
	"  reverse         first copy pass backwards\n"
	"  timeout=5000    deadline of each read, ms; an overdue read resets the drive\n"
	"  min-rate=0      bytes/s; slower areas are skipped in the first passes\n"
	"  passes=copy,trim,scrape,interiors,retry  which phases run (interiors: the insides\n"
	"                  of large bad areas, read when everything else is done)\n"
	"  infer=on        learn the bad bands' pattern (a failed head) and skip predicted ones\n"
	"  commit=5000     ms between commits of the map\n"
	"  domain=all|ntfs|ntfs:<glob>|lba:<start>+<count>[,...]  what to rescue (also: domain <ov> <spec>)\n"
	"  Sizes take k/M/G/T (KiB..) or kB/MB.. suffixes or s for sectors; retries, timeout and\n"
	"  commit are plain numbers (decimal or 0x). The map is the job's state: rescue again\n"
	"  after stop, quit, a reboot or a power cut continues where it left off.", cmd_rescue);

static int cmd_clone(int argc, char **argv)
{
	return start_job(argc, argv, 1);
}
COMMAND(clone, "clone <ov> <disk> [rescue options]",
	"rescue, and write every rescued block to <disk> as well",
	"The target gets what the cow already holds first, then each block as it is rescued. A\n"
	"  failing target stops the clone (named, with the byte offset); the cow is unharmed.", cmd_clone);

static void progress_line(const struct job *j, char *out, size_t n)
{
	uint64_t b[5], a[5];
	char pos[24], res[24], bad[24], rate[24], avg[24];
	rescue_domain_totals(&j->r, b, a);
	uint64_t all = b[0] + b[1] + b[2] + b[3] + b[4];
	const struct rescue_stats *st = &j->r.st;
	uint64_t run_s = st->elapsed_us / 1000000;
	uint64_t avg_bps = st->elapsed_us ? st->bytes_ok * 1000000 / st->elapsed_us : 0;
	uint64_t left = b[0] + b[1] + b[2];
	fmt_size(pos, sizeof(pos), st->pos);
	fmt_size(res, sizeof(res), b[4]);
	fmt_size(bad, sizeof(bad), b[3]);
	fmt_size(rate, sizeof(rate), st->rate);
	fmt_size(avg, sizeof(avg), avg_bps);
	char eta[24] = "-";
	if (avg_bps && left && j->state == JOB_RUNNING)
		fmt_snprintf(eta, sizeof(eta), "%llus", (unsigned long long)(left / avg_bps));
	fmt_snprintf(out, n, "ov%d %s %s p%u %s @%s rescued %s %llu.%llu%% bad %s/%llu rate %s/s avg %s/s %llus ETA %s",
		     j->idx, state_names[j->state], rescue_phase_name(st->phase), st->pass, st->dir < 0 ? "bwd" : "fwd",
		     pos, res, (unsigned long long)(all ? b[4] * 100 / all : 0),
		     (unsigned long long)(all ? b[4] * 1000 / all % 10 : 0), bad, (unsigned long long)a[3], rate, avg,
		     (unsigned long long)run_s, eta);
}

/* The screen's status line: one a job, running or not yet forgotten. */
int job_status_line(int k, char *out, size_t n, int *alarm)
{
	if (k < 0 || k >= MAX_OV || !jobs[k].used || !jobs[k].o)
		return 0;
	uint64_t b[5], a[5];
	rescue_domain_totals(&jobs[k].r, b, a);
	*alarm = jobs[k].state == JOB_FAILED || a[3] > 0;
	progress_line(&jobs[k], out, n);
	return 1;
}

static void print_status(const struct job *j)
{
	uint64_t b[5], a[5];
	char s[5][24], pos[24], rate[24], avg[24];
	rescue_domain_totals(&j->r, b, a);
	for (int i = 0; i < 5; i++)
		fmt_size(s[i], sizeof(s[i]), b[i]);
	const struct rescue_stats *st = &j->r.st;
	uint64_t avg_bps = st->elapsed_us ? st->bytes_ok * 1000000 / st->elapsed_us : 0;
	fmt_size(pos, sizeof(pos), st->pos);
	fmt_size(rate, sizeof(rate), st->rate);
	fmt_size(avg, sizeof(avg), avg_bps);
	uint64_t now = time_now_us();
	kprintf("ov%d %s: %s; %s, pass %u (%s), position %s\n", j->idx, j->clone ? "clone" : "rescue",
		state_names[j->state], rescue_phase_name(st->phase), st->pass,
		st->dir < 0 ? "backwards" : "forwards", pos);
	kprintf("  rescued %s, non-tried %s, non-trimmed %s, non-scraped %s, bad %s in %llu areas\n",
		s[4], s[0], s[1], s[2], s[3], (unsigned long long)a[3]);
	kprintf("  rate %s/s, average %s/s, last good read %llu s ago, reads %llu (%llu failed), run %llu s",
		rate, avg, (unsigned long long)(st->last_good_us ? (now - st->last_good_us) / 1000000 : 0),
		(unsigned long long)(j->reads_total + (j->alive ? st->reads : 0)),
		(unsigned long long)(j->failed_total + (j->alive ? st->failed_reads : 0)),
		(unsigned long long)((now - j->started_us) / 1000000));
	uint64_t left = b[0] + b[1] + b[2];
	if (avg_bps && left && j->state == JOB_RUNNING)
		kprintf(", ETA %llu s", (unsigned long long)(left / avg_bps));
	kprintf("\n");
	if (st->pattern[0])
		kprintf("  head map: %s; %llu bad bands met, %llu predicted (skipped unread, read last)\n", st->pattern,
			(unsigned long long)st->bands, (unsigned long long)st->bands_predicted);
	else if (st->bands)
		kprintf("  bad bands met: %llu (no repeating pattern yet)\n", (unsigned long long)st->bands);
	if (st->interiors_now)
		kprintf("  reading the insides of large bad areas now: everything else is done\n");
	else if (st->interior_areas && !(j->opt.passes & RESCUE_PASS_INTERIORS))
		kprintf("  the insides of large bad areas are left unread (%llu areas, %llu bytes; passes=...,interiors reads them)\n",
			(unsigned long long)st->interior_areas, (unsigned long long)st->interior_bytes);
	else if (st->phase < RP_RETRY && st->phase != RP_DONE)
		kprintf("  the insides of large bad areas are read last, when everything else is done\n");
	if (j->clone)
		kprintf("  clone target %s: %llu bytes written%s%s\n", j->target.blk->name,
			(unsigned long long)st->clone_bytes, j->r.target_rc ? ", failed: " : "",
			j->r.target_rc ? err_str(j->r.target_rc) : "");
	kprintf("  command: %s\n", j->cmdline);
}

static int cmd_status(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return -E_USAGE;
	int n = 0;
	for (int i = 0; i < MAX_OV; i++)
		if (jobs[i].used) {
			print_status(&jobs[i]);
			n++;
		}
	if (!n)
		kprintf("no jobs (rescue <ov> starts one)\n");
	return 0;
}
COMMAND(status, "status", "every job: phase, pass, position, rescued, bad, non-tried, rate, ETA", NULL, cmd_status);

static int cmd_wait(int argc, char **argv)
{
	if (argc > 2)
		return -E_USAGE;
	struct job *only = NULL;
	if (argc == 2 && !(only = find_job(argv[1])))
		return -E_NOENT;
	int live = setting_progress() == PROGRESS_LIVE;
	deadline_t next = deadline_in_ms(live ? 1000 : 5000);
	char line[200];
	for (;;) {
		int running = 0, rc = 0;
		for (int i = 0; i < MAX_OV; i++) {
			struct job *j = &jobs[i];
			if (!j->used || (only && j != only))
				continue;
			if (j->alive && j->state != JOB_STOPPED)
				running++;
			else if (j->state == JOB_FAILED)
				rc = j->result;
		}
		if (!running) {
			if (live)
				kprintf("\n");
			return rc;
		}
		if (console_interrupted()) {
			kprintf("\n(the jobs go on; status shows them)\n");
			return cmd_said(-E_INTR);
		}
		if (deadline_passed(next)) {
			next = deadline_in_ms(live ? 1000 : 5000);
			for (int i = 0; i < MAX_OV; i++)
				if (jobs[i].alive && (!only || &jobs[i] == only)) {
					progress_line(&jobs[i], line, sizeof(line));
					char text[210];
					int len = fmt_snprintf(text, sizeof(text), live ? "\r%-100.100s" : "%s\n", line);
					console_progress(text, (size_t)len);
				}
		}
		task_sleep_us(20000);
	}
}
COMMAND(wait, "wait [<job>]", "block until the job (or every job) ends; Ctrl-C returns, jobs go on",
	"Shows a progress line while waiting (set progress=lines for one line every 5 s). Returns\n"
	"  the error of a failed job, so a script stops there.", cmd_wait);

static int cmd_stop(int argc, char **argv)
{
	if (argc != 2)
		return -E_USAGE;
	struct job *j = find_job(argv[1]);
	if (!j)
		return -E_NOENT;
	if (!j->alive || j->state == JOB_STOPPED) {
		kprintf("%s: the job is %s\n", argv[1], state_names[j->state]);
		return 0;
	}
	j->stop_req = 1;
	while (j->alive && j->state != JOB_STOPPED)
		task_yield();
	return 0;
}
COMMAND(stop, "stop <job>", "pause a job (its progress is committed)", NULL, cmd_stop);

static int cmd_wake(int argc, char **argv)
{
	if (argc != 2)
		return -E_USAGE;
	struct job *j = find_job(argv[1]);
	if (!j)
		return -E_NOENT;
	if (!j->alive || j->state == JOB_RUNNING) {
		kprintf("%s: the job is %s\n", argv[1], state_names[j->state]);
		return j->alive ? 0 : -E_INVAL;
	}
	j->wake_req = 1;
	return 0;
}
COMMAND(wake, "wake <job>", "resume a stopped job, or one waiting for its source; one waiting for its cow looks again at once", NULL, cmd_wake);

static int cmd_quit(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return -E_USAGE;
	jobs_stop_all();
	int rc = 0;
	for (int i = 0; i < MAX_OV; i++) {
		struct overlay *o = jobs[i].o;
		if (jobs[i].used && o && o->cow && overlay_commit(o) < 0)
			rc = -E_IO;
	}
	kprintf("all jobs ended; progress committed\n");
	return rc;
}
COMMAND(quit, "quit", "end every job and commit (rescue <ov> continues later)", NULL, cmd_quit);

static int cmd_disk(int argc, char **argv)
{
	if (argc != 3)
		return -E_USAGE;
	struct overlay *o = overlay_find(argv[1]);
	struct blk_dev *d = blk_find(argv[2]);
	if (!o || !d)
		return -E_NOENT;
	struct job *j = o->job;
	if (j && j->state == JOB_RUNNING) {
		kprintf("%s: the job is running on %s; re-binding is for a source that went away\n", argv[1],
			o->src.blk->name);
		return cmd_said(-E_BUSY);
	}
	if (d == o->dst.blk || (d->flags & BLK_F_COW)) {
		kprintf("disk: %s is a cow\n", d->name);
		return cmd_said(-E_INVAL);
	}
	blk_reprobe(d);
	struct bdev_adapter cand;
	bdev_adapt(&cand, d);
	char why[200] = "";
	ov_lock(o);
	blk_protect_tree(d, BLK_F_SOURCE, true);   /* before its first byte is read */
	int rc = cow_check_source(o->cow, &cand.bdev, why, sizeof(why));
	if (rc == 0)
		bdev_adapt(&o->src, d);   /* the cow keeps pointing at o->src */
	overlay_refresh_source_flags();
	ov_unlock(o);
	if (rc < 0) {
		kprintf("disk: %s refused: %s\n", d->name, why[0] ? why : err_str(rc));
		return cmd_said(rc);
	}
	log_event(LOG_INFO, "%s: source re-bound to %s", argv[1], d->name);
	if (j)
		j->rebound = 1;
	return 0;
}
COMMAND(disk, "disk <ov> <disk>", "re-bind an overlay's source after a hot-swap (identity checked)", NULL, cmd_disk);

/* No options yet: the table makes a stray word or a mistyped option a precise refusal. */
static const struct opt domain_table[] = { OPT_END };

static int cmd_domain(int argc, char **argv)
{
	struct opts_result res;
	int rc = opts_parse(domain_table, NULL, 0, argc - 1, argv + 1, 2, &res);
	if (rc < 0) {
		kprintf("domain: %s\n", res.why);
		return cmd_said(rc);
	}
	if (res.npos != 2)
		return -E_USAGE;
	const char *ov = argv[1 + res.pos[0]], *spec = argv[1 + res.pos[1]];
	struct overlay *o = overlay_find(ov);
	if (!o)
		return -E_NOENT;
	char why[160] = "";
	struct rescue_domain d;
	rc = parse_domain_spec(o, &d, spec, why, sizeof(why));
	if (rc < 0) {
		kprintf("domain: %s\n", why);
		return cmd_said(rc);
	}
	rescue_domain_free(&o->next_domain);
	o->next_domain = d;
	if (d.n)
		kprintf("%s: the next rescue covers %llu sectors in %u ranges%s\n", ov,
			(unsigned long long)rescue_domain_sectors(&d), d.n, d.ngroups > 1 ? " (in parts, by priority)" : "");
	else
		kprintf("%s: the next rescue covers the whole source\n", ov);
	return 0;
}
COMMAND(domain, "domain <ov> all|ntfs|ntfs:<glob>|lba:<start>+<count>[,...]", "restrict the next rescue to a domain",
	"  all                 the whole source\n"
	"  ntfs                the used clusters of its NTFS volumes, by priority: partition tables\n"
	"                      and boot sectors, $MFT and $MFTMirr, directory indexes, file data,\n"
	"                      the other used clusters; free space never\n"
	"  ntfs:<glob>         just the matching files' data (after the metadata to find them):\n"
	"                      ntfs:*.jpg, ntfs:/Users/*/Documents/*  ('*' and '?' within a name)\n"
	"  lba:<s>+<n>[,...]   sectors\n"
	"Reading the volumes rescues the metadata sectors it touches.\n", cmd_domain);

static int cmd_reset(int argc, char **argv)
{
	if (argc < 2 || argc > 3)
		return -E_USAGE;
	const char *types = argc == 3 ? argv[2] : "-/";
	for (const char *t = types; *t; t++)
		if (cow_state_index((uint8_t)*t) < 0 || *t == COW_FINISHED || *t == COW_NONTRIED) {
			kprintf("reset: types are a set of * / - (non-trimmed, non-scraped, bad)\n");
			return cmd_said(-E_USAGE);
		}
	struct overlay *o = overlay_find(argv[1]);
	if (!o)
		return -E_NOENT;
	if (o->job) {
		kprintf("reset: %s has a job; quit or let it end first\n", argv[1]);
		return cmd_said(-E_BUSY);
	}
	const struct cow_map *m = cow_get_map(o->cow);
	uint32_t ls = o->src.blk->lsize;
	uint64_t p = 0, bytes = 0, areas = 0;
	int rc = 0;
	ov_lock(o);
	while (p < m->sectors && rc == 0) {
		const struct cow_extent *x = cow_map_at(m, p);
		uint64_t a = x->start, b = x->start + x->count;
		if (strchr(types, x->state)) {
			rc = cow_set_state(o->cow, a * ls, (b - a) * ls, COW_NONTRIED);
			bytes += (b - a) * ls;
			areas++;
		}
		p = b;
	}
	if (rc == 0)
		rc = cow_sync(o->cow);
	ov_unlock(o);
	if (rc < 0)
		return rc;
	kprintf("%s: %llu bytes in %llu areas are non-tried again\n", argv[1], (unsigned long long)bytes,
		(unsigned long long)areas);
	return 0;
}
COMMAND(reset, "reset <ov> [types]", "turn bad areas back into non-tried (types: - and / by default)", NULL, cmd_reset);
