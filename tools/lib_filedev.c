/* Files and block devices as cow block devices (pread/pwrite/fdatasync). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "lib_filedev.h"
#include "../lib/errors.h"

/* The host tools run one request at a time: each ends inside submit, and wait reports it. */
static int fd_read(struct filedev *d, struct cow_io *io)
{
	for (uint32_t done = 0; done < io->len;) {
		ssize_t n = pread(d->fd, (char *)io->buf + done, io->len - done, (off_t)(io->off + done));
		if (n <= 0) {
			io->bad_off = io->off + done;
			return n == 0 ? -E_RANGE : errno == EIO ? -E_MEDIUM : -E_IO;
		}
		done += (uint32_t)n;
	}
	return 0;
}

static int fd_write(struct filedev *d, const struct cow_io *io)
{
	for (uint32_t done = 0; done < io->len;) {
		ssize_t n = pwrite(d->fd, (const char *)io->buf + done, io->len - done, (off_t)(io->off + done));
		if (n <= 0)
			return errno == ENOSPC ? -E_NOSPC : -E_IO;
		done += (uint32_t)n;
	}
	return 0;
}

static void fd_submit(void *ctx, struct cow_io *io)
{
	struct filedev *d = ctx;
	if (io->op == COW_IO_READ)
		io->status = fd_read(d, io);
	else if (io->op == COW_IO_WRITE)
		io->status = fd_write(d, io);
	else
		io->status = fdatasync(d->fd) == 0 ? 0 : -E_IO;
}

static int fd_wait(void *ctx, struct cow_io *io)
{
	(void)ctx;
	return io->status;
}

int filedev_open(struct filedev *d, const char *path, int writable)
{
	memset(d, 0, sizeof(*d));
	d->path = path;
	d->fd = open(path, writable ? O_RDWR : O_RDONLY);
	if (d->fd < 0)
		return errno == ENOENT ? -E_NOENT : -E_IO;
	struct stat st;
	if (fstat(d->fd, &st) < 0)
		goto fail;
	d->bdev = (struct cow_bdev){ .ctx = d, .lsize = 512, .psize = 512, .submit = fd_submit,
				     .wait = fd_wait };
	if (S_ISBLK(st.st_mode)) {
		uint64_t size;
		int ss = 512;
		unsigned int ps = 512;
		if (ioctl(d->fd, BLKGETSIZE64, &size) < 0)
			goto fail;
		ioctl(d->fd, BLKSSZGET, &ss);
		ioctl(d->fd, BLKPBSZGET, &ps);
		d->bdev.size = size;
		d->bdev.lsize = (uint32_t)ss;
		d->bdev.psize = ps;
	} else {
		d->bdev.size = (uint64_t)st.st_size / 512 * 512;
	}
	return 0;
fail:
	close(d->fd);
	d->fd = -1;
	return -E_IO;
}

void filedev_close(struct filedev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

static void *h_alloc(size_t n) { return malloc(n ? n : 1); }
static void h_free(void *p) { free(p); }
static uint64_t h_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}
static void h_random(void *buf, size_t n)
{
	if (getrandom(buf, n, 0) != (ssize_t)n)
		for (size_t i = 0; i < n; i++)
			((unsigned char *)buf)[i] = (unsigned char)rand();
}
const struct cow_env host_env = { h_alloc, h_free, h_now, h_random };
