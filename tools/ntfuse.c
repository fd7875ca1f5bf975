/* ntfuse: a read-only FUSE mount (libfuse3) of an NTFS volume inside a cow (with or without its
 * source) or an image; ranges not rescued read as EIO, never as zeros. */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lib_cli.h"
#include "lib_ntvol.h"
#include "../lib/errors.h"

static const char *const usage_text =
	"usage: ntfuse [-f] [--part N] <cow | image> [source] <mountpoint>\n"
	"  Mounts the NTFS volume (the first one, or the N-th NTFS partition) read-only.\n"
	"  Without the source, a cow holds only what was rescued: reads of anything else fail\n"
	"  with EIO (a read stops short before the first such byte), never reading as zeros.\n"
	"  -f   stay in the foreground. Unmount with fusermount3 -u <mountpoint>.\n"
	"Exit status: 0 unmounted cleanly, 1 the mount failed, 2 usage or I/O error.\n";

static struct ntdisk disk;
static struct ntfs_vol vol;

/* NTFS time (100 ns since 1601) to a timespec. */
static struct timespec ts(uint64_t t)
{
	const uint64_t epoch = 116444736000000000ull;
	struct timespec r = { 0, 0 };
	if (t > epoch) {
		r.tv_sec = (time_t)((t - epoch) / 10000000);
		r.tv_nsec = (long)((t - epoch) % 10000000 * 100);
	}
	return r;
}

static int errno_of(int rc)
{
	switch (rc) {
	case -E_NOENT: return ENOENT;
	case -E_NOMEM: return ENOMEM;
	case -E_INVAL: return ENOTDIR;
	case -E_UNSUPP: return EOPNOTSUPP;   /* compressed or encrypted */
	default: return EIO;
	}
}

static void fill_stat(const struct ntfs_stat *s, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = s->mft;
	st->st_mode = s->dir ? S_IFDIR | 0555 : S_IFREG | 0444;
	st->st_nlink = s->dir ? 2 : 1;
	st->st_size = (off_t)s->size;
	st->st_blocks = (blkcnt_t)((s->alloc + 511) / 512);
	st->st_mtim = ts(s->mtime);
	st->st_ctim = ts(s->ctime);
	st->st_atim = ts(s->atime);
}

/* The record and attributes a path names, or a negative errno for FUSE. */
static int lookup_stat(const char *path, uint64_t *rec, struct ntfs_stat *s)
{
	int rc = ntfs_lookup(&vol, path, rec);
	if (rc == 0)
		rc = ntfs_stat(&vol, *rec, s);
	return rc < 0 ? -errno_of(rc) : 0;
}

static int nt_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	uint64_t rec;
	struct ntfs_stat s;
	int rc = lookup_stat(path, &rec, &s);
	if (rc < 0)
		return rc;
	fill_stat(&s, st);
	return 0;
}

struct fill_ctx { void *buf; fuse_fill_dir_t filler; };

static int fill_one(void *ctx, const struct ntfs_dirent *e)
{
	struct fill_ctx *f = ctx;
	if (strchr(e->name, '/') || !strcmp(e->name, ".") || !strcmp(e->name, ".."))
		return 0;   /* a POSIX-namespace name no path can name here */
	struct stat st;
	fill_stat(&e->st, &st);
	f->filler(f->buf, e->name, &st, 0, 0);
	return 0;
}

static int nt_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	uint64_t rec;
	int rc = ntfs_lookup(&vol, path, &rec);
	if (rc < 0)
		return -errno_of(rc);
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	struct fill_ctx f = { buf, filler };
	rc = ntfs_dir_list(&vol, rec, fill_one, &f);
	return rc < 0 ? -errno_of(rc) : 0;
}

static int nt_open(const char *path, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	uint64_t rec;
	struct ntfs_stat s;
	int rc = lookup_stat(path, &rec, &s);
	if (rc < 0)
		return rc;
	if (s.dir)
		return -EISDIR;
	fi->fh = rec;
	fi->keep_cache = 1;
	return 0;
}

static int nt_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path;
	struct ntfs_stat s;
	int rc = ntfs_stat(&vol, fi->fh, &s);
	if (rc < 0)
		return -errno_of(rc);
	if ((uint64_t)off >= s.size)
		return 0;
	uint64_t n = s.size - (uint64_t)off < size ? s.size - (uint64_t)off : size;
	rc = ntfs_file_read(&vol, fi->fh, (uint64_t)off, (uint32_t)n, buf);
	if (rc == 0)
		return (int)n;
	if (rc != -E_MEDIUM && rc != -E_IO && rc != -E_NOENT)
		return -errno_of(rc);   /* not a hole in the rescue: nothing to salvage piecewise */
	/* Something in the range is not readable: give what precedes it, a cluster at a time. */
	uint64_t done = 0;
	while (done < n) {
		uint64_t at = (uint64_t)off + done, piece = vol.cluster - at % vol.cluster;
		if (piece > n - done)
			piece = n - done;
		if (ntfs_file_read(&vol, fi->fh, at, (uint32_t)piece, buf + done) < 0)
			break;
		done += piece;
	}
	return done ? (int)done : -EIO;
}

static const struct fuse_operations ops = {
	.getattr = nt_getattr,
	.readdir = nt_readdir,
	.open = nt_open,
	.read = nt_read,
};

int main(int argc, char **argv)
{
	int fg = 0;
	unsigned want = 1;
	uint64_t part;
	static const struct option longs[] = {
		{ "part", required_argument, NULL, 'P' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	for (int c; (c = cli_getopt("ntfuse", argc, argv, "f", longs)) != -1;) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			return 0;
		} else if (c == 'f') {
			fg = 1;
		} else if (c == 'P' && cli_u64("ntfuse", "--part", optarg, 1, 999, &part) == 0) {
			want = (unsigned)part;
		} else {
			fputs(usage_text, stderr);
			return 2;
		}
	}
	int a = optind;
	if (argc - a < 2 || argc - a > 3) {
		fputs(usage_text, stderr);
		return 2;
	}
	const char *src = argc - a == 3 ? argv[a + 1] : NULL, *mnt = argv[argc - 1];
	if (ntdisk_open(&disk, "ntfuse", argv[a], src, NULL) < 0)
		return 2;
	struct part parts[64];
	struct parttab t;
	unsigned n;
	if (ntdisk_volumes(&disk, "ntfuse", parts, 64, &n, &t) < 0 || n < want) {
		if (n < want)
			fprintf(stderr, "ntfuse: %s: no NTFS volume number %u\n", argv[a], want);
		ntdisk_close(&disk);
		return 2;
	}
	int rc = ntfs_open(&vol, &host_env, ntdisk_read, &disk, parts[want - 1].start, parts[want - 1].size);
	if (rc < 0) {
		fprintf(stderr, "ntfuse: volume at 0x%llX: %s\n", (unsigned long long)parts[want - 1].start, err_str(rc));
		ntdisk_close(&disk);
		return 2;
	}
	vol.say = ntdisk_say;
	vol.say_ctx = "ntfuse";
	/* Single-threaded (-s): the volume's buffers are shared by every request. */
	char *fargv[8];
	int fargc = 0;
	fargv[fargc++] = argv[0];
	fargv[fargc++] = (char *)mnt;
	fargv[fargc++] = "-s";
	fargv[fargc++] = "-o";
	fargv[fargc++] = "ro,fsname=ntfuse,subtype=ntfs";
	if (fg)
		fargv[fargc++] = "-f";
	fargv[fargc] = NULL;
	rc = fuse_main(fargc, fargv, &ops, NULL);
	ntfs_close(&vol);
	ntdisk_close(&disk);
	return rc ? 1 : 0;
}
