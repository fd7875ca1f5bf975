/* nbdkit-cowboot-plugin: a cow and its (optional) source served over NBD as one read-write disk,
 * the overlay of the cow engine (docs/cowtool.md, "serve"). The source is only ever read. */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../lib_filedev.h"
#include "../../lib/errors.h"

/* Every connection serves the same cow, and the engine's state (the map, the journal records
 * not yet committed, the counters) is one structure with no locks of its own: every engine call
 * runs under one mutex, `mu`, whatever connection it comes from. That makes any number of
 * clients safe, and lets a flush on one connection commit the writes of all of them
 * (multi-conn). The model is nevertheless parallel for one reason: the first write over rescued
 * sectors must commit "written" before its data lands (docs/cow-format.md), and requests that
 * arrive together share that commit (a group commit, wait_claims) instead of paying one each. */
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

#define ZERO_CHUNK (1u << 20)   /* NBD_CMD_WRITE_ZEROES is written a megabyte at a time */

static char *cow_path, *src_path;
static int holes_zero;          /* holes=zero: never-rescued ranges without a source read as zeros */
static struct filedev cd, sd;
static struct cow *cow;
static int cow_writable;        /* the cow file opened read-write (else every write is refused) */
static int dirty;               /* written since the last commit */
static int failed;              /* a write or commit failed: the engine's state is no longer trusted */
static uint64_t src_size;
static uint32_t lsize;
static char description[300];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;   /* held for every engine call */
static pthread_cond_t committed = PTHREAD_COND_INITIALIZER;
static uint64_t claims, claims_done;   /* claims made; claims covered by a finished commit */
static int committing;                 /* a writer is gathering claims for one commit */

static int cb_config(const char *key, const char *value)
{
	if (!strcmp(key, "cow")) {
		free(cow_path);
		if (!(cow_path = nbdkit_absolute_path(value)))
			return -1;
	} else if (!strcmp(key, "source")) {
		free(src_path);
		if (!(src_path = nbdkit_absolute_path(value)))
			return -1;
	} else if (!strcmp(key, "holes")) {
		if (strcmp(value, "eio") && strcmp(value, "zero")) {
			nbdkit_error("holes=%s: must be eio or zero", value);
			return -1;
		}
		holes_zero = value[0] == 'z';
	} else {
		nbdkit_error("unknown parameter '%s' (cow=, source=, holes=)", key);
		return -1;
	}
	return 0;
}

static int cb_config_complete(void)
{
	if (!cow_path) {
		nbdkit_error("cow=<file> is required");
		return -1;
	}
	return 0;
}

/* The cow is opened once, before nbdkit takes connections (and before it forks away): a cow
 * that does not open, or a source that is not the cow's, stops it at once with the reason. */
static int cb_get_ready(void)
{
	int rc = filedev_open(&cd, cow_path, 1);
	cow_writable = rc == 0;
	if (rc < 0 && (errno == EACCES || errno == EROFS || errno == EPERM))
		rc = filedev_open(&cd, cow_path, 0);
	if (rc < 0) {
		nbdkit_error("%s: cannot open: %m", cow_path);
		return -1;
	}
	/* Two writers on one cow would each commit a map that does not know the other's writes. */
	if (flock(cd.fd, (cow_writable ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		nbdkit_error("%s: in use by another program (%m)", cow_path);
		filedev_close(&cd);
		return -1;
	}
	if (src_path && filedev_open(&sd, src_path, 0) < 0) {   /* read-only, always */
		nbdkit_error("%s: cannot open: %m", src_path);
		filedev_close(&cd);
		return -1;
	}
	char why[256] = "";
	rc = cow_open(&host_env, &cd.bdev, src_path ? &sd.bdev : NULL, &cow, why, sizeof(why));
	if (rc < 0) {
		nbdkit_error("%s: cannot open the cow: %s%s%s", cow_path, err_str(rc), why[0] ? ": " : "", why);
		filedev_close(&cd);
		if (src_path)
			filedev_close(&sd);
		return -1;
	}
	struct cow_geometry g;
	cow_get_geometry(cow, &g);
	src_size = g.source_size;
	lsize = g.src_lsize;
	snprintf(description, sizeof(description), "cowboot overlay: cow %s, source %s%s", cow_path,
		 src_path ? src_path : "none",
		 src_path ? "" : holes_zero ? " (never-rescued ranges read as ZEROS)" : " (never-rescued ranges fail with EIO)");
	if (!cow_writable)
		fprintf(stderr, "nbdkit-cowboot-plugin: %s is not writable: serving it read-only\n", cow_path);
	if (holes_zero && !src_path)
		fprintf(stderr, "nbdkit-cowboot-plugin: WARNING: holes=zero: ranges never rescued read as zeros, "
				"not as the disk's data\n");
	return 0;
}

/* At a clean exit (SIGINT, SIGTERM, last client with --exit-with-parent...): what was written
 * is committed; a cow nothing wrote to is left exactly as it was. */
static void cb_cleanup(void)
{
	if (!cow)
		return;
	if (dirty && !failed) {
		int rc = cow_close(cow);
		if (rc < 0)
			nbdkit_error("%s: the final commit failed: %s", cow_path, err_str(rc));
	} else {
		cow_discard(cow);
	}
	cow = NULL;
	filedev_close(&cd);
	if (src_path)
		filedev_close(&sd);
}

static void cb_unload(void)
{
	free(cow_path);
	free(src_path);
}

static void *cb_open(int readonly)
{
	(void)readonly;
	return &cow;   /* one overlay for every connection: the handle carries nothing */
}

static int64_t cb_get_size(void *h)
{
	(void)h;
	return (int64_t)src_size;
}

static const char *cb_export_description(void *h)
{
	(void)h;
	return description;
}

static int cb_can_write(void *h)
{
	(void)h;
	return cow_writable;
}

static int cb_can_flush(void *h)
{
	(void)h;
	return 1;
}

static int cb_can_fua(void *h)
{
	(void)h;
	return NBDKIT_FUA_NATIVE;   /* a FUA write is followed by a commit */
}

static int cb_can_multi_conn(void *h)
{
	(void)h;
	return 1;   /* one engine for all connections: a commit covers every one's writes */
}

static int cb_can_zero(void *h)
{
	(void)h;
	return 1;
}

static int cb_can_fast_zero(void *h)
{
	(void)h;
	return 0;   /* zeros are written like any data: never faster than a write */
}

static int engine_errno(int rc)
{
	return rc == -E_NOSPC ? ENOSPC : rc == -E_RDONLY ? EROFS : EIO;
}

/* [off, off + len), sector-aligned, from the overlay. With a source, the engine reads each
 * range from the cow or the source; without one, a range the cow never got is a hole: EIO, or
 * zeros with holes=zero. */
static int ov_read(uint64_t off, uint64_t len, uint8_t *buf)
{
	if (src_path) {
		uint64_t bad = off;
		int rc = cow_ov_read(cow, off, len, buf, &bad);
		if (rc < 0) {
			nbdkit_error("reading byte %llu of the %s: %s", (unsigned long long)bad,
				     rc == -E_MEDIUM ? "overlay (source or cow)" : "overlay", err_str(rc));
			errno = engine_errno(rc);
			return -1;
		}
		return 0;
	}
	const struct cow_map *m = cow_get_map(cow);
	uint64_t s = off / lsize, e = (off + len) / lsize;
	while (s < e) {
		const struct cow_extent *x = cow_map_at(m, s);
		int present = x->written || x->state == COW_FINISHED;
		uint64_t r = x->start + x->count;
		while (r < e && (x = cow_map_next(m, x)) && (x->written || x->state == COW_FINISHED) == present)
			r = x->start + x->count;
		if (r > e)
			r = e;
		uint8_t *p = buf + (s * lsize - off);
		uint64_t n = (r - s) * lsize;
		if (present) {
			uint64_t bad = s * lsize;
			int rc = cow_ov_read(cow, s * lsize, n, p, &bad);
			if (rc < 0) {
				nbdkit_error("%s: reading the cow's copy of byte %llu: %s", cow_path,
					     (unsigned long long)bad, err_str(rc));
				errno = engine_errno(rc);
				return -1;
			}
		} else if (holes_zero) {
			memset(p, 0, n);
		} else {
			nbdkit_error("byte %llu was never rescued and no source is attached", (unsigned long long)(s * lsize));
			errno = EIO;
			return -1;
		}
		s = r;
	}
	return 0;
}

/* Requests need not be sector-aligned: the sectors they cut are read whole around them. */
static int pread_locked(void *buf, uint32_t count, uint64_t off)
{
	uint64_t a = off / lsize * lsize, b = (off + count + lsize - 1) / lsize * lsize;
	if (a == off && b == off + count)
		return ov_read(off, count, buf);
	uint8_t *tmp = malloc(b - a);
	if (!tmp) {
		nbdkit_error("out of memory");
		errno = ENOMEM;
		return -1;
	}
	int rc = ov_read(a, b - a, tmp);
	if (rc == 0)
		memcpy(buf, tmp + (off - a), count);
	free(tmp);
	return rc;
}

static int cb_pread(void *h, void *buf, uint32_t count, uint64_t off, uint32_t flags)
{
	(void)h, (void)flags;
	pthread_mutex_lock(&mu);
	int rc = pread_locked(buf, count, off);
	pthread_mutex_unlock(&mu);
	return rc;
}

/* Under mu. With nothing written since the last commit the superblocks are left alone. */
static int commit(void)
{
	uint64_t upto = claims;
	int rc = dirty ? cow_sync(cow) : 0;
	if (rc < 0) {
		failed = 1;
		pthread_cond_broadcast(&committed);
		nbdkit_error("%s: commit failed: %s; no more writes are taken", cow_path, err_str(rc));
		errno = engine_errno(rc);
		return -1;
	}
	dirty = 0;
	claims_done = upto;   /* a claim sets dirty: none is left uncommitted */
	pthread_cond_broadcast(&committed);
	return 0;
}

/* Under mu: waits until every claim made so far is committed. The first writer to need it
 * lets the others on their way claim too (it gives mu away once), then commits for all. */
static int wait_claims(void)
{
	uint64_t want = claims;
	while (claims_done < want && !failed) {
		if (committing) {
			pthread_cond_wait(&committed, &mu);
			continue;
		}
		committing = 1;
		pthread_mutex_unlock(&mu);
		sched_yield();
		pthread_mutex_lock(&mu);
		int rc = commit();
		committing = 0;
		if (rc < 0)
			return -1;
	}
	if (failed) {
		nbdkit_error("%s: an earlier write or commit failed: writes are refused", cow_path);
		errno = EIO;
		return -1;
	}
	return 0;
}

/* Writes through the engine's overlay path: the data lands in the cow's data area, and the map
 * calls it written only at the next commit. A partial sector is merged with the overlay's copy
 * of the rest of it (which must therefore read). */
static int ov_write(const void *buf, uint32_t count, uint64_t off, uint32_t flags)
{
	if (failed) {
		nbdkit_error("%s: an earlier write or commit failed: writes are refused", cow_path);
		errno = EIO;
		return -1;
	}
	uint64_t a = off / lsize * lsize, b = (off + count + lsize - 1) / lsize * lsize;
	const void *data = buf;
	uint8_t *tmp = NULL;
	if (a != off || b != off + count) {
		if (!(tmp = malloc(b - a))) {
			nbdkit_error("out of memory");
			errno = ENOMEM;
			return -1;
		}
		if ((off != a && ov_read(a, lsize, tmp) < 0) ||
		    ((off + count) % lsize && ov_read(b - lsize, lsize, tmp + (b - lsize - a)) < 0)) {
			free(tmp);
			return -1;
		}
		memcpy(tmp + (off - a), buf, count);
		data = tmp;
	}
	dirty = 1;
	/* Rescued sectors in the range become written at a commit before the data lands: the writer
	 * waits for the commit of every claim made so far (its own among them). A claim made later
	 * cannot touch this range: no sector in it is rescued-and-unwritten any more. */
	int64_t n = cow_ov_claim(cow, a, b - a);
	int rc = n < 0 ? (int)n : 0;
	if (n > 0)
		claims++;
	if (rc == 0 && claims_done < claims && wait_claims() < 0) {
		free(tmp);
		return -1;
	}
	if (rc == 0)
		rc = cow_ov_write(cow, a, b - a, data);
	free(tmp);
	if (rc < 0) {
		/* The engine's state after a failing cow is not for this plugin to judge: nothing
		 * more is written before someone looks (cowtool check). */
		failed = 1;
		nbdkit_error("%s: writing %u bytes at byte %llu: %s; no more writes are taken", cow_path, count,
			     (unsigned long long)off, err_str(rc));
		errno = engine_errno(rc);
		return -1;
	}
	return (flags & NBDKIT_FLAG_FUA) ? commit() : 0;
}

static int cb_pwrite(void *h, const void *buf, uint32_t count, uint64_t off, uint32_t flags)
{
	(void)h;
	pthread_mutex_lock(&mu);
	int rc = ov_write(buf, count, off, flags);
	pthread_mutex_unlock(&mu);
	return rc;
}

static int cb_zero(void *h, uint32_t count, uint64_t off, uint32_t flags)
{
	(void)h;
	static const uint8_t zeros[ZERO_CHUNK];
	if (flags & NBDKIT_FLAG_FAST_ZERO) {
		errno = ENOTSUP;
		return -1;
	}
	/* MAY_TRIM is not taken up: forgetting written sectors would bring back the source's data
	 * (or a hole), not zeros. */
	int rc = 0;
	pthread_mutex_lock(&mu);
	while (count && rc == 0) {
		uint32_t n = count < ZERO_CHUNK ? count : ZERO_CHUNK;
		rc = ov_write(zeros, n, off, 0);
		count -= n, off += n;
	}
	if (rc == 0 && (flags & NBDKIT_FLAG_FUA))
		rc = commit();
	pthread_mutex_unlock(&mu);
	return rc;
}

static int cb_flush(void *h, uint32_t flags)
{
	(void)h, (void)flags;
	pthread_mutex_lock(&mu);
	int rc = 0;
	if (failed) {
		nbdkit_error("%s: an earlier write or commit failed: nothing more is committed", cow_path);
		errno = EIO;
		rc = -1;
	} else {
		rc = commit();
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

static struct nbdkit_plugin plugin = {
	.name = "cowboot",
	.longname = "cowboot overlay: a cow partition over its read-only source",
	.version = COWBOOT_VERSION,
	.description = "Serves a cowboot cow (and optionally its source) as one read-write disk.",
	.config = cb_config,
	.config_complete = cb_config_complete,
	.config_help = "cow=<FILE>     (required) the cow partition or file\n"
		       "source=<FILE>  the source disk or image (opened read-only, identity-checked)\n"
		       "holes=eio|zero what never-rescued ranges read as without a source (default eio)",
	.magic_config_key = "cow",
	.get_ready = cb_get_ready,
	.cleanup = cb_cleanup,
	.unload = cb_unload,
	.open = cb_open,
	.get_size = cb_get_size,
	.export_description = cb_export_description,
	.can_write = cb_can_write,
	.can_flush = cb_can_flush,
	.can_fua = cb_can_fua,
	.can_multi_conn = cb_can_multi_conn,
	.can_zero = cb_can_zero,
	.can_fast_zero = cb_can_fast_zero,
	.pread = cb_pread,
	.pwrite = cb_pwrite,
	.zero = cb_zero,
	.flush = cb_flush,
	.errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN(plugin)
