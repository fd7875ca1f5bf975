/* cowtool: the host side of a cow partition (cow-partition.md, "Host side"): format, inspect,
 * check, print the ddrescue mapfile, import a ddrescue run, export the merged image, reset,
 * upgrade a version-1 cow, and serve the overlay over NBD (nbdkit with
 * build/nbdkit-cowboot-plugin.so). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libgen.h>
#include "lib_cli.h"
#include "lib_filedev.h"
#include "../lib/errors.h"
#include "../rescue/cow_mapfile.h"
#include "../rescue/mapfile.h"

#define EXIT_FINDINGS 1
#define EXIT_USAGE 2

static const char *const usage_text =
	"usage: cowtool <command> [arguments]\n"
	"  format <cow> <source> [--unit BYTES] [--yes]  make <cow> the cow of <source>\n"
	"  info <cow>                                    geometry, identity, counters, state totals\n"
	"  check <cow>                                   verify all metadata; exit 1 on findings\n"
	"  map <cow>                                     the GNU ddrescue mapfile on stdout\n"
	"  import-map <cow> <mapfile> [--image <img>]    take over a ddrescue run\n"
	"  export <cow> [<source>] <out> [--fill HEX]    the merged image\n"
	"  reset <cow> [TYPES]                           bad (and non-scraped) back to non-tried\n"
	"  serve <cow> [<source>] [--readonly] [--holes=eio|zero] [-U SOCK | -p PORT] [-- NBDKIT-OPTIONS]\n"
	"                                                the overlay as a read-write NBD disk (nbdkit)\n"
	"  upgrade <cow>                                 rewrite an older cow's map as the current version (3)\n"
	"Exit status: 0 success, 1 check found problems, 2 usage or I/O error.\n";

static int usage(const char *msg)
{
	if (msg)
		fprintf(stderr, "cowtool: %s\n", msg);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

/* --help of the tool or of any command: the usage on stdout, exit 0. */
static int help(void)
{
	fputs(usage_text, stdout);
	return 0;
}

static int fail(const char *path, const char *what, int rc, const char *why)
{
	fprintf(stderr, "cowtool: %s: %s: %s%s%s\n", path, what, err_str(rc), why && *why ? ": " : "",
		why ? why : "");
	return EXIT_USAGE;
}

static int open_dev(struct filedev *d, const char *path, int writable)
{
	int rc = filedev_open(d, path, writable);
	if (rc < 0)
		fprintf(stderr, "cowtool: %s: cannot open: %s\n", path, strerror(errno));
	return rc;
}

static int open_cow(const char *path, const char *src_path, struct filedev *cd, struct filedev *sd,
		    struct cow **c, int writable)
{
	char why[256] = "";
	if (open_dev(cd, path, writable) < 0)
		return -E_IO;
	if (src_path && open_dev(sd, src_path, 0) < 0) {
		filedev_close(cd);
		return -E_IO;
	}
	int rc = cow_open(&host_env, &cd->bdev, src_path ? &sd->bdev : NULL, c, why, sizeof(why));
	if (rc < 0) {
		fail(path, "cannot open the cow", rc, why);
		filedev_close(cd);
		if (src_path)
			filedev_close(sd);
	}
	return rc;
}

/* Each command's options (getopt_long over the command's words, argv[0] being its name). */
static const struct option format_options[] = {
	{ "unit", required_argument, NULL, 'u' }, { "yes", no_argument, NULL, 'y' },
	{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
};

static int cmd_format(int argc, char **argv)
{
	uint64_t unit = 4096;
	int yes = 0;
	for (int c; (c = cli_getopt("cowtool format", argc, argv, "", format_options)) != -1;) {
		if (c == 'y')
			yes = 1;
		else if (c == 'u') {   /* the console's size syntax: 64k, 1MiB; cow_format checks the range */
			if (cli_size("cowtool format", "--unit", optarg, 0, 0, &unit) < 0)
				return usage(NULL);
		} else if (c == 'h')
			return help();
		else
			return usage(NULL);
	}
	if (argc - optind > 2)
		return usage("format: too many arguments");
	if (argc - optind < 2)
		return usage("format needs <cow> <source>");
	const char *cow = argv[optind], *src = argv[optind + 1];
	struct filedev sd, cd;
	if (open_dev(&sd, src, 0) < 0)
		return EXIT_USAGE;
	struct stat st;
	int exists = stat(cow, &st) == 0;
	if (exists && !yes) {
		fprintf(stderr, "cowtool: %s exists: formatting destroys what it holds; add --yes\n", cow);
		return EXIT_USAGE;
	}
	if (!exists) {
		/* A new file, sparse, just large enough: the source plus the metadata area. */
		int fd = open(cow, O_RDWR | O_CREAT | O_EXCL, 0644);
		if (fd < 0 || ftruncate(fd, (off_t)(sd.bdev.size + cow_metadata_bytes(sd.bdev.size))) < 0) {
			fprintf(stderr, "cowtool: %s: cannot create: %s\n", cow, strerror(errno));
			return EXIT_USAGE;
		}
		close(fd);
	}
	if (open_dev(&cd, cow, 1) < 0)
		return EXIT_USAGE;
	char why[256] = "";
	int rc = cow_format(&host_env, &cd.bdev, &sd.bdev, (uint32_t)unit, why, sizeof(why));
	filedev_close(&cd);
	filedev_close(&sd);
	if (rc < 0)
		return fail(cow, "format", rc, why);
	printf("%s is now the cow of %s\n", cow, src);
	return 0;
}

/* The ranges the overlay wrote (the cow holds their only copy), neighbours merged, in bytes;
 * at most `limit` of them (0: all). Returns how many there are. */
static uint64_t print_written(const struct cow_map *m, uint32_t lsize, const char *prefix, uint64_t limit)
{
	uint64_t n = 0;
	for (const struct cow_extent *x = cow_map_get(m, 0); x;) {
		if (!x->written) {
			x = cow_map_next(m, x);
			continue;
		}
		uint64_t start = x->start, end = x->start + x->count;
		while ((x = cow_map_next(m, x)) && x->written)
			end = x->start + x->count;
		if (!limit || n < limit)
			printf("%s0x%08llX  0x%08llX\n", prefix, (unsigned long long)(start * lsize),
			       (unsigned long long)((end - start) * lsize));
		n++;
	}
	return n;
}

static void print_totals(const struct cow_map *m, uint32_t lsize)
{
	static const char *const names[5] = { "non-tried", "non-trimmed", "non-scraped", "bad-sector", "rescued" };
	struct cow_totals t;
	cow_map_totals(m, &t);
	for (int k = 0; k < 5; k++)
		printf("  %-12s %14llu bytes in %llu area(s)\n", names[k],
		       (unsigned long long)(t.sectors[k] * lsize), (unsigned long long)t.areas[k]);
	printf("  %-12s %14llu bytes\n", "written", (unsigned long long)(t.written * lsize));
}

static void say_line(void *ctx, const char *line)
{
	printf("%s: %s\n", (const char *)ctx, line);
}

/* Every metadata structure on its own, then what can be salvaged; exit 1 unless the cow opens
 * from its newest superblock. */
static int cmd_check(const char *path)
{
	struct filedev cd;
	if (open_dev(&cd, path, 0) < 0)
		return EXIT_USAGE;
	int rc = cow_inspect(&host_env, &cd.bdev, say_line, (void *)path);
	filedev_close(&cd);
	if (rc < 0)
		return fail(path, "check", rc, NULL);
	if (rc == 0)
		printf("%s: metadata valid\n", path);
	return rc ? EXIT_FINDINGS : 0;
}

static int cmd_info(int argc, char **argv, int check_only)
{
	if (argc != 1)
		return usage(check_only ? "check needs <cow>" : "info needs <cow>");
	if (check_only)
		return cmd_check(argv[0]);
	struct filedev cd, sd;
	struct cow *c;
	if (open_cow(argv[0], NULL, &cd, &sd, &c, 0) < 0)
		return check_only ? EXIT_FINDINGS : EXIT_USAGE;
	struct cow_geometry g;
	cow_get_geometry(c, &g);
	const struct cow_map *m = cow_get_map(c);
	if (check_only) {
		printf("%s: metadata valid (superblock sequence %llu, %llu extents)\n", argv[0],
		       (unsigned long long)g.sb_seq, (unsigned long long)m->n);
	} else {
		struct cow_counters ct;
		cow_get_counters(c, &ct);
		printf("cow %s, format version %u\n  uuid ", argv[0], g.version);
		for (int i = 0; i < 16; i++)
			printf("%02x%s", g.uuid[i], i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
		printf("\nsource: %llu bytes, sectors %u/%u, model '%s', serial '%s'\n",
		       (unsigned long long)g.source_size, g.src_lsize, g.src_psize, g.model, g.serial);
		if (g.version >= 2)
			printf("geometry: unit %u, map pages: %llu slots of 4096 bytes at %llu (%llu free; %llu extents), data at %llu\n",
			       g.unit, (unsigned long long)g.page_slots, (unsigned long long)g.page_offset,
			       (unsigned long long)g.pages_free, (unsigned long long)g.max_extents,
			       (unsigned long long)g.data_offset);
		else
			printf("geometry: unit %u, checkpoints 2 x %llu bytes (%llu extents), journal %llu bytes at %llu, data at %llu\n",
			       g.unit, (unsigned long long)g.checkpoint_bytes, (unsigned long long)g.max_extents,
			       (unsigned long long)g.journal_bytes, (unsigned long long)g.journal_offset,
			       (unsigned long long)g.data_offset);
		printf("counters: source reads %llu, cow reads %llu, cow writes %llu, rescued %llu bytes, bad %llu bytes, commits %llu, units present %llu\n",
		       (unsigned long long)ct.source_reads, (unsigned long long)ct.cow_reads,
		       (unsigned long long)ct.cow_writes, (unsigned long long)ct.bytes_rescued,
		       (unsigned long long)ct.bytes_bad, (unsigned long long)ct.commits,
		       (unsigned long long)ct.units_present);
		printf("map: %llu extents of at most %llu, %llu KiB in memory\n", (unsigned long long)m->n,
		       (unsigned long long)m->max, (unsigned long long)(cow_map_bytes(m) / 1024));
		print_totals(m, g.src_lsize);
		uint64_t shown = 20, nw = 0;
		for (const struct cow_extent *x = cow_map_get(m, 0); x && !nw; x = cow_map_next(m, x))
			nw = x->written;
		if (nw) {
			printf("written through the overlay (pos, size):\n");
			nw = print_written(m, g.src_lsize, "  ", shown);
			if (nw > shown)
				printf("  ... and %llu more (cowtool map lists them all)\n", (unsigned long long)(nw - shown));
		}
	}
	cow_discard(c);   /* read-only inspection: nothing to commit */
	filedev_close(&cd);
	return 0;
}

static int emit_stdout(void *ctx, const char *text, size_t len)
{
	(void)ctx;
	return fwrite(text, 1, len, stdout) == len ? 0 : -E_IO;
}

static void now_text(char *out, size_t n)
{
	time_t t = time(NULL);
	strftime(out, n, "%Y-%m-%d %H:%M:%S", localtime(&t));
}

static int cmd_map(int argc, char **argv)
{
	if (argc != 1)
		return usage("map needs <cow>");
	struct filedev cd, sd;
	struct cow *c;
	if (open_cow(argv[0], NULL, &cd, &sd, &c, 0) < 0)
		return EXIT_USAGE;
	char now[32], cmd[600];
	now_text(now, sizeof(now));
	snprintf(cmd, sizeof(cmd), "cowtool map %s", argv[0]);
	int rc = cow_write_mapfile(c, "cowboot " COWBOOT_VERSION, cmd, now, now, NULL, emit_stdout, NULL);
	/* Written ranges are not a ddrescue state: they follow as comments, which ddrescue skips. */
	const struct cow_map *m = cow_get_map(c);
	struct cow_totals t;
	cow_map_totals(m, &t);
	if (rc == 0 && t.written) {
		struct cow_geometry g;
		cow_get_geometry(c, &g);
		printf("# written through the overlay (pos, size); the cow holds the only copy:\n");
		print_written(m, g.src_lsize, "#written  ", 0);
	}
	cow_discard(c);
	filedev_close(&cd);
	return rc < 0 ? fail(argv[0], "writing the mapfile", rc, NULL) : 0;
}

struct import_ctx { struct cow *c; int img_fd; const char *img; uint32_t lsize; int rc; int need_image; uint64_t size; };

static int import_block(void *ctx, const struct mapfile_block *b)
{
	struct import_ctx *x = ctx;
	if (b->pos % x->lsize || b->size % x->lsize || b->pos + b->size > x->size) {
		fprintf(stderr, "cowtool: block at 0x%llX is not sector-aligned or past the source\n",
			(unsigned long long)b->pos);
		return -E_RANGE;
	}
	if (b->status != '+')
		return b->status == '?' ? 0 : cow_set_state(x->c, b->pos, b->size, (uint8_t)b->status);
	if (x->img_fd < 0) {
		x->need_image = 1;
		return -E_INVAL;
	}
	static char buf[1 << 20];
	for (uint64_t off = 0; off < b->size; off += sizeof(buf)) {
		uint64_t n = b->size - off < sizeof(buf) ? b->size - off : sizeof(buf);
		if (pread(x->img_fd, buf, n, (off_t)(b->pos + off)) != (ssize_t)n) {
			fprintf(stderr, "cowtool: %s: cannot read %llu bytes at %llu\n", x->img,
				(unsigned long long)n, (unsigned long long)(b->pos + off));
			return -E_IO;
		}
		int rc = cow_store_rescued(x->c, b->pos + off, n, buf);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	for (size_t r; buf && (r = fread(buf + n, 1, cap - n, f)) > 0;) {
		n += r;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	*len = n;
	return buf;
}

static const struct option import_options[] = {
	{ "image", required_argument, NULL, 'i' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
};

static int cmd_import(int argc, char **argv)
{
	const char *img = NULL;
	for (int c; (c = cli_getopt("cowtool import-map", argc, argv, "", import_options)) != -1;) {
		if (c == 'i')
			img = optarg;
		else if (c == 'h')
			return help();
		else
			return usage(NULL);
	}
	if (argc - optind > 2)
		return usage("import-map: too many arguments");
	if (argc - optind < 2)
		return usage("import-map needs <cow> <mapfile>");
	const char *cow = argv[optind], *map = argv[optind + 1];
	size_t len;
	char *text = slurp(map, &len);
	if (!text) {
		fprintf(stderr, "cowtool: %s: cannot read: %s\n", map, strerror(errno));
		return EXIT_USAGE;
	}
	char err[200];
	if (mapfile_read(text, len, MAPFILE_MAP, NULL, NULL, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "cowtool: %s: %s\n", map, err);
		free(text);
		return EXIT_USAGE;
	}
	struct filedev cd, sd;
	struct cow *c;
	if (open_cow(cow, NULL, &cd, &sd, &c, 1) < 0) {
		free(text);
		return EXIT_USAGE;
	}
	struct cow_geometry g;
	cow_get_geometry(c, &g);
	struct import_ctx x = { c, img ? open(img, O_RDONLY) : -1, img, g.src_lsize, 0, 0, g.source_size };
	if (img && x.img_fd < 0) {
		fprintf(stderr, "cowtool: %s: cannot open: %s\n", img, strerror(errno));
		cow_close(c);
		free(text);
		return EXIT_USAGE;
	}
	int rc = mapfile_read(text, len, MAPFILE_MAP, NULL, import_block, &x, err, sizeof(err));
	if (rc == 0)
		rc = cow_close(c);
	else
		cow_close(c);   /* what was imported before the error is kept: it is all correct */
	free(text);
	if (x.img_fd >= 0)
		close(x.img_fd);
	filedev_close(&cd);
	if (x.need_image) {
		fprintf(stderr, "cowtool: %s has finished blocks: their data must come from --image <img>\n", map);
		return EXIT_USAGE;
	}
	if (rc < 0)
		return fail(cow, "import", rc, err);
	printf("imported %s into %s\n", map, cow);
	return 0;
}

/* The export's output, written by a thread of its own one chunk behind the reads: the disk's
 * write and the next read run at once. The thread also tests the chunk for zeros, a file system
 * block at a time, and writes only the runs of blocks that are not zero, so that the output is
 * as sparse as `cp --sparse=always` makes it. Direct I/O where the output allows it: an image is
 * written once and not read back soon, so it should not push the page cache out (and in a VM,
 * allocating page cache for gigabytes costs more than the disk's write). */
#define EXPORT_CHUNK (16u << 20)   /* direct writes this large keep the device's queue full */
#define EXPORT_BLOCK 4096u         /* the sparseness grain */

struct writer {
	int fd, direct;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const uint8_t *buf;
	uint64_t off, len;
	int busy, quit, err;   /* err: errno of the first failed write */
};

static int write_run(struct writer *w, const uint8_t *buf, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(w->fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINVAL && w->direct) {
			/* A piece direct I/O cannot take (a 512-byte tail on a 4Kn disk): this and the
			 * rest go through the page cache. */
			w->direct = 0;
			if (fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) & ~O_DIRECT) < 0)
				return errno;
			continue;
		}
		if (n <= 0)
			return n < 0 ? errno : ENOSPC;   /* nothing written: the device is full */
		buf += n, len -= (uint64_t)n, off += (uint64_t)n;
	}
	return 0;
}

/* n is a multiple of 8 (sectors are), p 8-byte aligned (sector offsets into aligned memory). */
static int all_zero(const uint8_t *p, uint64_t n)
{
	const uint64_t *q = (const uint64_t *)(const void *)p;
	uint64_t w = n / 8, i = 0;
	for (; i + 8 <= w; i += 8)
		if (q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] | q[i + 7])
			return 0;
	for (; i < w; i++)
		if (q[i])
			return 0;
	return 1;
}

/* The blocks of the output file the chunk covers that are not all zero, in as few writes as
 * possible; zero blocks are skipped (the file reads as zeros there). */
static int write_chunk(struct writer *w, const uint8_t *buf, uint64_t len, uint64_t off)
{
	uint64_t run = 0, k = 0;   /* run: where the pending non-zero bytes start */
	while (k < len) {
		uint64_t end = (off + k) / EXPORT_BLOCK * EXPORT_BLOCK + EXPORT_BLOCK - off;
		if (end > len)
			end = len;
		if (all_zero(buf + k, end - k)) {
			int err = run < k ? write_run(w, buf + run, k - run, off + run) : 0;
			if (err)
				return err;
			run = end;
		}
		k = end;
	}
	return run < len ? write_run(w, buf + run, len - run, off + run) : 0;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->busy && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->busy)
			break;
		pthread_mutex_unlock(&w->mu);
		int err = w->err ? 0 : write_chunk(w, w->buf, w->len, w->off);
		pthread_mutex_lock(&w->mu);
		if (err && !w->err)
			w->err = err;
		w->busy = 0;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static int writer_open(struct writer *w, const char *path)
{
	memset(w, 0, sizeof(*w));
	w->direct = 1;
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
	if (w->fd < 0 && errno == EINVAL) {
		w->direct = 0;   /* tmpfs and the like */
		w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	}
	if (w->fd < 0)
		return -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		close(w->fd);
		return -1;
	}
	return 0;
}

/* Hands a chunk over once the previous one is written; 0, or the errno of a failed write. */
static int writer_put(struct writer *w, const uint8_t *buf, uint64_t len, uint64_t off)
{
	pthread_mutex_lock(&w->mu);
	while (w->busy)
		pthread_cond_wait(&w->cv, &w->mu);
	int err = w->err;
	if (!err) {
		w->buf = buf;
		w->len = len;
		w->off = off;
		w->busy = 1;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return err;
}

/* Waits until the writer has no chunk. */
static void writer_idle(struct writer *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->busy)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

/* Waits for the last chunk and ends the thread; the first write error's errno, or 0. */
static int writer_close(struct writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->quit = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	return w->err;
}

/* The cow's data area mapped read-only, a window at a time: its copy of source byte X is at
 * data_off + X (docs/cow-format.md), so the ranges the cow holds go from its page cache to the
 * output without a copy into a buffer (with direct I/O, without any copy). A window of 1 GiB
 * (plus a chunk, so that any chunk starting in it fits) keeps the page tables of a whole disk's
 * mapping from piling up. Each chunk is read into the mapping (MADV_POPULATE_READ) before it is
 * handed over, so reading still overlaps the writes and a read error is an error code; on a
 * kernel without it, a read error in the writer is a SIGBUS, reported here. */
#define EXPORT_WINDOW (1ull << 30)
static struct {
	int fd;                      /* -1: ranges of the cow are read through the overlay */
	const char *path;
	uint64_t data_off, size;     /* the data area: where it starts in the cow, the source size */
	const uint8_t *map;          /* the current window, NULL before the first */
	uint64_t start, len;         /* its source offset and length */
} xw = { .fd = -1 };

static void export_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	const uint8_t *a = si->si_addr;
	char msg[300];
	int n = snprintf(msg, sizeof(msg), "\ncowtool: reading %s at %llu: %s\n", xw.path,
			 a >= xw.map && a < xw.map + xw.len ? (unsigned long long)(xw.start + (uint64_t)(a - xw.map)) : 0ull,
			 err_str(-E_IO));
	if (n > 0 && write(2, msg, (size_t)n) < 0)
		_exit(EXIT_USAGE);
	_exit(EXIT_USAGE);
}

static void export_map_open(const char *path, const struct cow_geometry *g)
{
	xw.fd = open(path, O_RDONLY);
	if (xw.fd < 0)
		return;   /* then the overlay reads them into a buffer */
	xw.path = path;
	xw.data_off = g->data_offset;
	xw.size = g->source_size;
	struct sigaction sa = { .sa_sigaction = export_sigbus, .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

static void export_map_close(void)
{
	if (xw.map)
		munmap((void *)xw.map, xw.len);
	xw.map = NULL;
	if (xw.fd >= 0)
		close(xw.fd);
	xw.fd = -1;
}

/* The cow's copy of [off, off + len), read into memory; NULL when it cannot be mapped (the
 * overlay reads it instead: also from now on). When it cannot be read, *rc = -E_MEDIUM and
 * *bad is the first unreadable byte (source offset), found a page at a time. */
static const uint8_t *export_map_get(struct writer *w, uint64_t off, uint64_t len, int *rc, uint64_t *bad)
{
	if (xw.fd < 0)
		return NULL;
	if (!xw.map || off < xw.start || off + len > xw.start + xw.len) {
		uint64_t start = off / EXPORT_WINDOW * EXPORT_WINDOW;
		uint64_t wlen = xw.size - start < EXPORT_WINDOW + EXPORT_CHUNK ? xw.size - start : EXPORT_WINDOW + EXPORT_CHUNK;
		if (xw.map) {
			writer_idle(w);   /* the writer may still be on the old window's last chunk */
			munmap((void *)xw.map, xw.len);
			xw.map = NULL;
		}
		void *m = mmap(NULL, wlen, PROT_READ, MAP_SHARED, xw.fd, (off_t)(xw.data_off + start));
		if (m == MAP_FAILED) {
			export_map_close();
			return NULL;
		}
		madvise(m, wlen, MADV_SEQUENTIAL);
		xw.map = m, xw.start = start, xw.len = wlen;
	}
	const uint8_t *p = xw.map + (off - xw.start);
#ifdef MADV_POPULATE_READ
	uint64_t a = (off - xw.start) & ~(uint64_t)4095, end = off - xw.start + len;
	if (madvise((void *)(xw.map + a), end - a, MADV_POPULATE_READ) < 0 && errno != EINVAL) {
		*rc = -E_MEDIUM;
		*bad = off;
		for (; a < end; a += 4096)
			if (madvise((void *)(xw.map + a), 4096, MADV_POPULATE_READ) < 0) {
				*bad = xw.start + a > off ? xw.start + a : off;
				break;
			}
	}
#endif
	return p;
}

static const struct option export_options[] = {
	{ "fill", required_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
};

static int cmd_export(int argc, char **argv)
{
	int have_fill = 0;
	uint8_t fill[64];
	uint32_t fill_len = 0;
	for (int c; (c = cli_getopt("cowtool export", argc, argv, "", export_options)) != -1;) {
		if (c == 'f') {
			if (cli_hex("cowtool export", "--fill", optarg, fill, sizeof(fill), &fill_len) < 0)
				return usage(NULL);
			have_fill = 1;
		} else if (c == 'h')
			return help();
		else
			return usage(NULL);
	}
	char **pos = argv + optind;
	int npos = argc - optind;
	if (npos > 3)
		return usage("export: too many arguments");
	if (npos < 2)
		return usage("export needs <cow> [<source>] <out>");
	const char *cow = pos[0], *src = npos == 3 ? pos[1] : NULL, *out = pos[npos - 1];
	struct filedev cd, sd;
	struct cow *c;
	if (open_cow(cow, src, &cd, &sd, &c, 0) < 0)
		return EXIT_USAGE;
	struct cow_geometry g;
	cow_get_geometry(c, &g);
	/* Opening the output truncates it: never the cow or the source themselves. */
	struct stat so, si;
	if (stat(out, &so) == 0)
		for (int k = 0; k < 2; k++) {
			const char *in = k ? src : cow;
			if (in && stat(in, &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
				fprintf(stderr, "cowtool: %s is the %s itself: the merged image needs a file of its own\n",
					out, k ? "source" : "cow");
				cow_discard(c);
				filedev_close(&cd);
				if (src)
					filedev_close(&sd);
				return EXIT_USAGE;
			}
		}
	struct writer w;
	if (writer_open(&w, out) < 0) {
		fprintf(stderr, "cowtool: %s: cannot create: %s\n", out, strerror(errno));
		cow_discard(c);
		return EXIT_USAGE;
	}
	export_map_open(cow, &g);
	const struct cow_map *m = cow_get_map(c);
	/* Two chunks, page-aligned for direct I/O: one read while the other is written. The fill
	 * pattern long enough that a chunk finds its own phase at a 512-byte boundary in it (one
	 * exists below 64 x 512: the offset is a multiple of 512). */
	static uint8_t bufs[2][EXPORT_CHUNK] __attribute__((aligned(4096)));
	static uint8_t pattern[EXPORT_CHUNK + 64 * 512] __attribute__((aligned(4096)));
	if (have_fill)
		for (size_t k = 0; k < sizeof(pattern); k++)
			pattern[k] = fill[k % fill_len];
	int tty = isatty(2), rc = 0, cur = 0, werr = 0;
	time_t t0 = time(NULL), last = t0;
	for (const struct cow_extent *e = cow_map_get(m, 0); e && rc == 0; e = cow_map_next(m, e)) {
		int present = e->written || e->state == COW_FINISHED;
		uint64_t base = e->start * g.src_lsize, len = e->count * g.src_lsize;
		if (!present && !src && !have_fill)
			continue;   /* a hole: nothing known, nothing written */
		for (uint64_t off = 0; off < len && rc == 0; off += EXPORT_CHUNK) {
			uint64_t at = base + off, n = len - off < EXPORT_CHUNK ? len - off : EXPORT_CHUNK;
			uint64_t bad = at;
			const uint8_t *data = bufs[cur];
			time_t now = time(NULL);
			if (tty && now != last) {
				last = now;
				double frac = (double)at / (double)g.source_size;
				double rate = (double)at / (double)(now - t0) / 1048576.0;
				fprintf(stderr, "\rexport: %5.1f%%  %8.1f MiB/s  ETA %4.0f s ", frac * 100, rate,
					frac > 0 ? (double)(now - t0) * (1 - frac) / frac : 0.0);
			}
			const uint8_t *mapped = present ? export_map_get(&w, at, n, &rc, &bad) : NULL;
			if (mapped) {
				data = mapped;
			} else if (present || src) {
				rc = cow_ov_read(c, at, n, bufs[cur], &bad);
				cur ^= 1;   /* the writer will have this one; the other is free again */
			} else {
				uint64_t j = 0;
				while ((512 * j) % fill_len != at % fill_len)
					j++;
				data = pattern + 512 * j;
			}
			if (rc < 0) {
				fprintf(stderr, "cowtool: reading %s %s at byte %llu of the source: %s\n",
					present ? "the cow's copy in" : "the source", present ? cow : src,
					(unsigned long long)(rc == -E_MEDIUM ? bad : at), err_str(rc));
				break;
			}
			if ((werr = writer_put(&w, data, n, at)) != 0)
				rc = -E_IO;
		}
	}
	int cerr = writer_close(&w);
	if (!werr && cerr) {
		werr = cerr;
		rc = -E_IO;
	}
	if (werr)
		fprintf(stderr, "cowtool: %s: write failed: %s\n", out, strerror(werr));
	if (tty)
		fputc('\n', stderr);
	/* The size is set last: writing into a file that grows is faster than filling holes of a
	 * pre-sized one, and trailing holes still read as zeros. */
	if (rc == 0 && ftruncate(w.fd, (off_t)g.source_size) < 0) {
		fprintf(stderr, "cowtool: %s: cannot set its size: %s\n", out, strerror(errno));
		rc = -E_IO;
	}
	if (close(w.fd) < 0 && rc == 0)
		rc = -E_IO;
	export_map_close();
	cow_discard(c);
	filedev_close(&cd);
	if (src)
		filedev_close(&sd);
	return rc < 0 ? EXIT_USAGE : 0;
}

static int cmd_reset(int argc, char **argv)
{
	if (argc < 1 || argc > 2)
		return usage("reset needs <cow> [TYPES]");
	const char *types = argc == 2 ? argv[1] : "-/";
	for (const char *t = types; *t; t++)
		if (!strchr("*/-", *t))
			return usage("reset TYPES are some of * / -");
	struct filedev cd, sd;
	struct cow *c;
	if (open_cow(argv[0], NULL, &cd, &sd, &c, 1) < 0)
		return EXIT_USAGE;
	const struct cow_map *m = cow_get_map(c);
	struct cow_geometry g;
	cow_get_geometry(c, &g);
	uint64_t changed = 0;
	int rc = 0;
	/* By sector: each change may merge the map around the extent just reset. */
	for (uint64_t p = 0; p < m->sectors && rc == 0;) {
		const struct cow_extent e = *cow_map_at(m, p);
		p = e.start + e.count;
		if (!strchr(types, e.state))
			continue;
		rc = cow_set_state(c, e.start * g.src_lsize, e.count * g.src_lsize, COW_NONTRIED);
		changed += e.count * g.src_lsize;
	}
	int rc2 = cow_close(c);
	filedev_close(&cd);
	if (rc < 0 || rc2 < 0)
		return fail(argv[0], "reset", rc < 0 ? rc : rc2, NULL);
	printf("%llu bytes back to non-tried\n", (unsigned long long)changed);
	return 0;
}

/* The plugin beside this program (build/), unless COWBOOT_NBDKIT_PLUGIN names another. */
static void plugin_path(char *out, size_t n)
{
	const char *env = getenv("COWBOOT_NBDKIT_PLUGIN");
	char self[4096];
	ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (env && *env)
		snprintf(out, n, "%s", env);
	else if (k > 0 && (self[k] = 0, 1))
		snprintf(out, n, "%s/nbdkit-cowboot-plugin.so", dirname(self));
	else
		snprintf(out, n, "nbdkit-cowboot-plugin.so");
}

static const struct option serve_options[] = {
	{ "readonly", no_argument, NULL, 'r' }, { "holes", required_argument, NULL, 'H' },
	{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
};

/* Runs nbdkit in the foreground with the plugin (exec: nbdkit takes over this process, so a
 * signal to it is a signal to nbdkit). The plugin opens the cow and checks the source. */
static int cmd_serve(int argc, char **argv)
{
	const char *sock = NULL, *port = NULL, *holes = "eio";
	int ro = 0, dash = argc;
	/* Ours before `--`, nbdkit's after: getopt sees only ours. */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			dash = i;
			break;
		}
	int extra = dash < argc ? dash + 1 : argc;
	for (int c; (c = cli_getopt("cowtool serve", dash, argv, "rU:p:", serve_options)) != -1;) {
		if (c == 'r') {
			ro = 1;
		} else if (c == 'H') {
			holes = optarg;
			if (strcmp(holes, "eio") && strcmp(holes, "zero"))
				return usage("--holes takes eio or zero");
		} else if (c == 'U') {
			sock = optarg;
		} else if (c == 'p') {
			port = optarg;
		} else if (c == 'h') {
			return help();
		} else {
			return usage("serve: nbdkit's own options go after --");
		}
	}
	if (dash - optind > 2)
		return usage("serve: too many arguments");
	if (dash - optind < 1)
		return usage("serve needs <cow>");
	const char *cow = argv[optind], *src = dash - optind == 2 ? argv[optind + 1] : NULL;
	if (sock && port)
		return usage("serve: -U SOCK or -p PORT, not both");
	char plugin[4200], cowarg[4200], srcarg[4200], holesarg[32];
	plugin_path(plugin, sizeof(plugin));
	if (access(plugin, R_OK) < 0) {
		fprintf(stderr, "cowtool: %s: %s (build it with make, or set COWBOOT_NBDKIT_PLUGIN)\n", plugin,
			strerror(errno));
		return EXIT_USAGE;
	}
	snprintf(cowarg, sizeof(cowarg), "cow=%s", cow);
	snprintf(srcarg, sizeof(srcarg), "source=%s", src ? src : "");
	snprintf(holesarg, sizeof(holesarg), "holes=%s", holes);
	const char *args[64];
	int n = 0;
	args[n++] = "nbdkit";
	args[n++] = "-f";
	if (ro)
		args[n++] = "-r";
	if (sock)
		args[n++] = "-U", args[n++] = sock;
	if (port)
		args[n++] = "-p", args[n++] = port;
	/* After --: nbdkit's options go before the plugin, key=value parameters (a filter's) after. */
	for (int i = extra; i < argc && n < 56; i++)
		if (!strchr(argv[i], '=') || argv[i][0] == '-')
			args[n++] = argv[i];
	args[n++] = plugin;
	args[n++] = cowarg;
	if (src)
		args[n++] = srcarg;
	args[n++] = holesarg;
	for (int i = extra; i < argc && n < 62; i++)
		if (strchr(argv[i], '=') && argv[i][0] != '-')
			args[n++] = argv[i];
	args[n] = NULL;
	char uri[4200];
	if (sock)
		snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
	else
		snprintf(uri, sizeof(uri), "nbd://localhost:%s", port ? port : "10809");
	fprintf(stderr, "cowtool: serving %s%s%s %s at %s (Ctrl-C commits and stops)\n", cow, src ? " over " : "",
		src ? src : "", ro ? "read-only" : "read-write", uri);
	if (!src)
		fprintf(stderr, "cowtool: no source: ranges never rescued %s\n",
			holes[0] == 'z' ? "read as ZEROS (--holes=zero), not as the disk's data" : "fail with EIO");
	fflush(stderr);
	execvp("nbdkit", (char **)args);
	fprintf(stderr, "cowtool: cannot run nbdkit: %s\n", strerror(errno));
	return EXIT_USAGE;
}

static int cmd_upgrade(int argc, char **argv)
{
	if (argc != 1)
		return usage("upgrade needs <cow>");
	struct filedev cd;
	if (open_dev(&cd, argv[0], 1) < 0)
		return EXIT_USAGE;
	char why[200] = "";
	int rc = cow_upgrade(&host_env, &cd.bdev, why, sizeof(why));
	filedev_close(&cd);
	if (rc < 0)
		return fail(argv[0], "upgrade", rc, why);
	printf(rc == 1 ? "%s: already version 3\n" : "%s: upgraded to version 3\n", argv[0]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return argc < 2 ? usage(NULL) : (fputs(usage_text, stdout), 0);
	const char *cmd = argv[1];
	argc -= 1;
	argv += 1;
	if (argc >= 2 && !strcmp(argv[1], "--help"))
		return help();
	/* The commands with options parse their own words; the others take only --help (before
	 * their arguments, which may begin with '-': reset's TYPES). */
	if (!strcmp(cmd, "format"))
		return cmd_format(argc, argv);
	if (!strcmp(cmd, "import-map"))
		return cmd_import(argc, argv);
	if (!strcmp(cmd, "export"))
		return cmd_export(argc, argv);
	if (!strcmp(cmd, "serve"))
		return cmd_serve(argc, argv);
	static const struct option none[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	char prog[40];
	snprintf(prog, sizeof(prog), "cowtool %s", cmd);
	int c = cli_getopt(prog, argc, argv, "+", none);
	if (c != -1)
		return c == 'h' ? help() : usage(NULL);
	argc -= optind;
	argv += optind;
	if (!strcmp(cmd, "info"))
		return cmd_info(argc, argv, 0);
	if (!strcmp(cmd, "check"))
		return cmd_info(argc, argv, 1);
	if (!strcmp(cmd, "map"))
		return cmd_map(argc, argv);
	if (!strcmp(cmd, "reset"))
		return cmd_reset(argc, argv);
	if (!strcmp(cmd, "upgrade"))
		return cmd_upgrade(argc, argv);
	fprintf(stderr, "cowtool: unknown command '%s'\n", cmd);
	return usage(NULL);
}
