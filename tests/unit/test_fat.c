/* The FAT writer (fs/fat.c) on images made by mkfs.vfat and filled by mtools: FAT12, FAT16,
 * FAT32 and 4 KiB sectors; long names; fragmented, nearly full and damaged volumes. Every
 * written image is checked from outside with `fsck.fat -n` and read back with mtype/mdir. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../../lib/errors.h"
#include "../../fs/fat.h"
#include "../../lib/sha256.h"
#include "../lib/check.h"
#include "../lib/shell.h"

static char dir[] = "/tmp/test_fat.XXXXXX";
static uint8_t work[FAT_WORK_BYTES];
static struct fat_vol vol;

struct file_dev { int fd; uint32_t lsize; uint64_t writes, flushes; };

static int fd_read(void *ctx, uint64_t lba, uint32_t count, void *buf)
{
	struct file_dev *f = ctx;
	ssize_t n = pread(f->fd, buf, (size_t)count * f->lsize, (off_t)(lba * f->lsize));
	return n == (ssize_t)count * f->lsize ? 0 : -E_IO;
}

static int fd_write(void *ctx, uint64_t lba, uint32_t count, const void *buf)
{
	struct file_dev *f = ctx;
	f->writes++;
	ssize_t n = pwrite(f->fd, buf, (size_t)count * f->lsize, (off_t)(lba * f->lsize));
	return n == (ssize_t)count * f->lsize ? 0 : -E_IO;
}

static int fd_flush(void *ctx)
{
	struct file_dev *f = ctx;
	f->flushes++;
	return 0;   /* the page cache is what mtools and fsck read: nothing to sync */
}

static struct file_dev fdev;

/* The output of a shell command (at most max-1 bytes). */
static size_t run_out(char *out, size_t max, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static size_t run_out(char *out, size_t max, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	size_t n = p ? fread(out, 1, max - 1, p) : 0;
	if (p)
		pclose(p);
	out[n] = 0;
	return n;
}

static int mount_img(const char *img, uint32_t lsize)
{
	if (fdev.fd > 0)
		close(fdev.fd);
	fdev = (struct file_dev){ open(img, O_RDWR), lsize, 0, 0 };
	struct stat st;
	fstat(fdev.fd, &st);
	struct fat_dev d = { &fdev, lsize, (uint64_t)st.st_size / lsize, fd_read, fd_write, fd_flush };
	int rc = fat_mount(&vol, &d, work);
	if (rc < 0)
		printf("  mount %s: %s: %s\n", img, err_name(rc), vol.why);
	return rc;
}

static void hash_file(const char *path, uint8_t out[32])
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	fstat(fd, &st);
	uint8_t *b = malloc((size_t)st.st_size);
	if (read(fd, b, (size_t)st.st_size) != st.st_size)
		memset(out, 0, 32);
	struct sha256 s;
	sha256_init(&s);
	sha256_update(&s, b, (size_t)st.st_size);
	sha256_final(&s, out);
	free(b);
	close(fd);
}

static bool fsck_clean(const char *img)
{
	char out[8192];
	run_out(out, sizeof(out), "fsck.fat -n %s 2>&1; echo rc=$?", img);
	bool ok = strstr(out, "rc=0\n") != NULL;
	if (!ok)
		printf("  fsck.fat -n %s:\n%s", img, out);
	return ok;
}

/* mtype's copy of a file equals data. */
static bool mtype_equals(const char *img, const char *path, const void *data, size_t len)
{
	size_t max = len + 4096;
	char *out = malloc(max + 1);
	size_t n = run_out(out, max + 1, "mtype -i %s '::%s' 2>&1", img, path);
	bool ok = n == len && !memcmp(out, data, len);
	if (!ok)
		printf("  mtype %s: %zu bytes, expected %zu: %.200s\n", path, n, len, out);
	free(out);
	return ok;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)("abcdefghijklmnopqrstuvwxyz0123456789\n"[(i * 7 + seed) % 37]);
}

/* A report-shaped tree on one kind of volume: nested directories with long names, files
 * created, overwritten larger and smaller, appended across clusters, an mtools file replaced. */
static void test_kind(const char *tag, const char *mkfs_opts, unsigned kib, uint32_t lsize, int type)
{
	char img[600], name[128];
	snprintf(img, sizeof(img), "%s/%s.img", dir, tag);
	sh("mkfs.vfat -C %s %s %u >/dev/null 2>&1 && echo old > %s/old.txt && "
	   "mcopy -i %s %s/old.txt '::/An old file from mtools.txt' && mmd -i %s ::/cowboot",
	   img, mkfs_opts, kib, dir, img, dir, img);
	snprintf(name, sizeof(name), "%s mounts as FAT%d", tag, type);
	CHECK(name, mount_img(img, lsize) == 0 && vol.type == type);
	if (vol.type != type)
		return;
	uint32_t free0 = vol.free_count;
	fat_set_time(&vol, 2026, 12, 1, 19, 57, 31);
	struct fat_dir cb, sess, sub;
	int rc = fat_mkdir(&vol, fat_root(&vol), "cowboot", &cb);   /* exists: made by mmd */
	rc = rc ?: fat_mkdir(&vol, cb, "20261201-195700-QEMU-1234", &sess);
	rc = rc ?: fat_mkdir(&vol, sess, "a directory with a rather long name, spaces and dots.d", &sub);
	snprintf(name, sizeof(name), "%s: mkdir (existing and new, long names)", tag);
	CHECK(name, rc == 0);
	static uint8_t a[300000], b[300000];
	fill(a, sizeof(a), 1);
	fill(b, sizeof(b), 5);
	uint32_t c = vol.cbytes;
	rc = fat_write_file(&vol, sess, "events.log", a, 1000, 'w');
	rc = rc ?: fat_write_file(&vol, sess, "events.log", a + 1000, 3 * c + 17, 'a');
	rc = rc ?: fat_write_file(&vol, sess, "events.log", a + 1000 + 3 * c + 17, c - 17, 'a');
	rc = rc ?: fat_write_file(&vol, sess, "ov0-QM00001.map", b, 5 * c + 1, 'w');
	rc = rc ?: fat_write_file(&vol, sess, "ov0-QM00001.map", b + 7, 2 * c, 'w');   /* shrinks */
	rc = rc ?: fat_write_file(&vol, sess, "summary.txt", b, 0, 'w');
	rc = rc ?: fat_write_file(&vol, sess, "summary.txt", b, 40000, 'w');        /* grows */
	rc = rc ?: fat_write_file(&vol, sess, "README.TXT", "plain 8.3\n", 10, 'w');
	rc = rc ?: fat_write_file(&vol, sub, "empty", b, 0, 'w');
	rc = rc ?: fat_write_file(&vol, fat_root(&vol), "an old file from MTOOLS.txt", "replaced\n", 9, 'w');
	rc = rc ?: fat_sync(&vol);
	snprintf(name, sizeof(name), "%s: write, overwrite, append, sync", tag);
	CHECK(name, rc == 0);
	if (rc)
		printf("  %s: %s\n", err_name(rc), vol.why);
	snprintf(name, sizeof(name), "%s: the device was flushed", tag);
	CHECK(name, fdev.flushes >= 1);
	snprintf(name, sizeof(name), "%s: fsck.fat -n finds nothing wrong", tag);
	CHECK(name, fsck_clean(img));
	snprintf(name, sizeof(name), "%s: mtype reads back every file", tag);
	const char *s = "/cowboot/20261201-195700-QEMU-1234/";
	char p[300];
	bool ok = true;
	snprintf(p, sizeof(p), "%sevents.log", s);
	ok &= mtype_equals(img, p, a, 1000 + 4 * c);
	snprintf(p, sizeof(p), "%sov0-QM00001.map", s);
	ok &= mtype_equals(img, p, b + 7, 2 * c);
	snprintf(p, sizeof(p), "%ssummary.txt", s);
	ok &= mtype_equals(img, p, b, 40000);
	snprintf(p, sizeof(p), "%sREADME.TXT", s);
	ok &= mtype_equals(img, p, "plain 8.3\n", 10);
	ok &= mtype_equals(img, "/An old file from mtools.txt", "replaced\n", 9);
	snprintf(p, sizeof(p), "%sa directory with a rather long name, spaces and dots.d/empty", s);
	ok &= mtype_equals(img, p, "", 0);
	CHECK(name, ok);
	char out[8192];
	run_out(out, sizeof(out), "mdir -i %s -/ -a ::/cowboot 2>&1", img);
	if (!strstr(out, "README   TXT"))
		printf("%s", out);
	snprintf(name, sizeof(name), "%s: mdir shows the long names", tag);
	CHECK(name, strstr(out, "a directory with a rather long name, spaces and dots.d") &&
		    strstr(out, "ov0-QM00001.map") && strstr(out, "events.log") && strstr(out, "README   TXT"));
	snprintf(name, sizeof(name), "%s: mdir shows the time they were written", tag);
	CHECK(name, strstr(out, "40000 2026-12-01  19:57") != NULL);
	/* Our own reader agrees, and the free count matches what was used. */
	uint32_t len = 0;
	static uint8_t back[300000];
	rc = mount_img(img, lsize);
	rc = rc ?: fat_mkdir(&vol, fat_root(&vol), "COWBOOT", &cb);
	rc = rc ?: fat_mkdir(&vol, cb, "20261201-195700-qemu-1234", &sess);
	rc = rc ?: fat_read_file(&vol, sess, "EVENTS.LOG", back, sizeof(back), &len);
	snprintf(name, sizeof(name), "%s: remount, names found in any case, read back", tag);
	CHECK(name, rc == 0 && len == 1000 + 4 * c && !memcmp(back, a, len));
	uint32_t used = 3 + 4 + 2 + (40000 + c - 1) / c + 1;   /* dirs, events, map, summary, README */
	snprintf(name, sizeof(name), "%s: the free count at remount is the one before less what was written", tag);
	CHECK(name, vol.free_count <= free0 - used && vol.free_count >= free0 - used - 2);
	if (!(vol.free_count <= free0 - used && vol.free_count >= free0 - used - 2))
		printf("  free %u -> %u, used %u\n", free0, vol.free_count, used);
}

/* Free space in many pieces: every other small file deleted; a large file fills the gaps. */
static void test_fragmented(void)
{
	char img[600];
	snprintf(img, sizeof(img), "%s/frag.img", dir);
	sh("mkfs.vfat -C %s -F 16 -s 1 8192 >/dev/null 2>&1 && head -c 1500 /dev/urandom > %s/small && "
	   "for i in $(seq 1 120); do mcopy -i %s %s/small ::/f$i.bin; done && "
	   "for i in $(seq 1 2 120); do mdel -i %s ::/f$i.bin; done", img, dir, img, dir, img);
	CHECK("fragmented: mounts", mount_img(img, 512) == 0);
	static uint8_t big[200000];
	fill(big, sizeof(big), 3);
	int rc = fat_write_file(&vol, fat_root(&vol), "a large file over fragmented space.bin", big, sizeof(big), 'w');
	rc = rc ?: fat_sync(&vol);
	CHECK("fragmented: a file larger than any free run is written", rc == 0);
	/* Its chain must have used the holes: the first cluster is one mdel freed. */
	struct fat_entry e;
	fat_lookup(&vol, fat_root(&vol), "a large file over fragmented space.bin", &e);
	CHECK("fragmented: it starts in the first hole", e.cluster < 10);
	CHECK("fragmented: fsck.fat -n clean", fsck_clean(img));
	CHECK("fragmented: mtype reads it back", mtype_equals(img, "/a large file over fragmented space.bin", big, sizeof(big)));
	CHECK("fragmented: the other files are intact", sh("mtype -i %s ::/f2.bin | cmp -s - %s/small", img, dir) == 0 &&
							 sh("mtype -i %s ::/f120.bin | cmp -s - %s/small", img, dir) == 0);
}

/* A nearly full FAT32 volume: a write that does not fit is refused before anything is written,
 * one that fits exactly succeeds, and FSInfo's free count stays right. */
static void test_full(void)
{
	char img[600];
	uint8_t h0[32], h1[32];
	snprintf(img, sizeof(img), "%s/full.img", dir);
	sh("mkfs.vfat -C %s -F 32 -s 1 34000 >/dev/null 2>&1 && mmd -i %s ::/cowboot", img, img);
	CHECK("full: FAT32 mounts", mount_img(img, 512) == 0 && vol.type == 32);
	uint32_t leave = 6;
	uint64_t fill_bytes = (uint64_t)(vol.free_count - leave) * vol.cbytes;
	sh("head -c %llu /dev/zero > %s/filler && mcopy -i %s %s/filler ::/filler", (unsigned long long)fill_bytes,
	   dir, img, dir);
	CHECK("full: mounts with 6 free clusters", mount_img(img, 512) == 0 && vol.free_count == leave);
	hash_file(img, h0);
	struct fat_dir cb;
	int rc = fat_mkdir(&vol, fat_root(&vol), "cowboot", &cb);
	static uint8_t d[8 * 4096];
	fill(d, sizeof(d), 9);
	int big = fat_write_file(&vol, cb, "summary.txt", d, 7 * vol.cbytes, 'w');
	fat_sync(&vol);
	hash_file(img, h1);
	CHECK("full: a write needing 7 clusters of 6 is -E_NOSPC", rc == 0 && big == -E_NOSPC);
	printf("  (%s)\n", vol.why);
	CHECK("full: it says how much is needed", strstr(vol.why, "needs 7 more clusters") != NULL);
	CHECK("full: nothing was written", fdev.writes == 0 && !memcmp(h0, h1, 32));
	rc = fat_write_file(&vol, cb, "summary.txt", d, 6 * vol.cbytes, 'w');
	rc = rc ?: fat_sync(&vol);
	CHECK("full: one needing exactly the 6 free clusters is written", rc == 0 && vol.free_count == 0);
	rc = fat_write_file(&vol, cb, "summary.txt", d, 1, 'a');
	CHECK("full: appending to a full cluster of a full volume is -E_NOSPC", rc == -E_NOSPC);
	rc = fat_write_file(&vol, cb, "summary.txt", d, 100, 'w');
	rc = rc ?: fat_sync(&vol);
	CHECK("full: overwriting it smaller frees its clusters", rc == 0 && vol.free_count == 5);
	CHECK("full: fsck.fat -n clean (FSInfo's free count included)", fsck_clean(img));
	CHECK("full: mtype reads it", mtype_equals(img, "/cowboot/summary.txt", d, 100));
	char out[4096];
	run_out(out, sizeof(out), "minfo -i %s :: 2>&1", img);
	CHECK("full: minfo's FSInfo free count is the real one", strstr(out, "free clusters=5") != NULL);
	if (!strstr(out, "free clusters=5"))
		printf("%s", out);
}

/* Many entries: a directory grows over several clusters; the FAT12 root fills up cleanly. */
static void test_many(void)
{
	char img[600], nm[100];
	snprintf(img, sizeof(img), "%s/many.img", dir);
	sh("mkfs.vfat -C %s -F 12 1440 >/dev/null 2>&1", img);
	CHECK("many: FAT12 floppy mounts", mount_img(img, 512) == 0 && vol.type == 12);
	struct fat_dir sub;
	int rc = fat_mkdir(&vol, fat_root(&vol), "many", &sub);
	for (int i = 0; rc == 0 && i < 150; i++) {
		snprintf(nm, sizeof(nm), "a long file name number %03d.txt", i);
		rc = fat_write_file(&vol, sub, nm, nm, (uint32_t)strlen(nm), 'w');
	}
	rc = rc ?: fat_sync(&vol);
	CHECK("many: 150 long names in one directory (it grows)", rc == 0);
	int n = 0;
	for (; rc == 0 && n < 1000; n++) {
		snprintf(nm, sizeof(nm), "root entry %d", n);
		rc = fat_mkdir(&vol, fat_root(&vol), nm, &sub);
	}
	printf("  (%s after %d)\n", vol.why, n - 1);
	CHECK("many: the fixed root fills up with -E_NOSPC", rc == -E_NOSPC && strstr(vol.why, "root directory is full"));
	fat_sync(&vol);
	CHECK("many: fsck.fat -n clean", fsck_clean(img));
	char out[65536];
	run_out(out, sizeof(out), "mdir -i %s -b ::/many | wc -l", img);
	CHECK("many: mdir lists 150 files", atoi(out) == 150);
	CHECK("many: one reads back", mtype_equals(img, "/many/a long file name number 149.txt",
						  "a long file name number 149.txt", 31));
	run_out(out, sizeof(out), "mdir -i %s -b :: | wc -l", img);
	CHECK("many: the root holds the directories that fitted", atoi(out) == n - 1 + 1);
}

static void patch(const char *img, long off, const void *b, size_t n)
{
	int fd = open(img, O_RDWR);
	if (pwrite(fd, b, n, off) != (ssize_t)n)
		printf("  patch failed\n");
	close(fd);
}

/* A damaged volume is refused (or the operation is) and nothing is written. */
static void test_damaged(void)
{
	char base[600], img[600];
	snprintf(base, sizeof(base), "%s/dmg0.img", dir);
	snprintf(img, sizeof(img), "%s/dmg.img", dir);
	sh("mkfs.vfat -C %s -F 16 -s 4 16384 >/dev/null 2>&1 && mmd -i %s ::/cowboot && "
	   "head -c 9000 /dev/urandom > %s/r && mcopy -i %s %s/r ::/cowboot/data.bin", base, base, dir, base, dir);
	/* op: 0 boot sector offset, 3 FAT offset (both copies), 4 FAT offset (first copy only),
	 * 1 and 2 below. */
	struct { const char *what; long off; uint8_t bytes[4]; int n; int rc; int op; } cases[] = {
		{ "cluster size 3 sectors", 13, { 3 }, 1, -E_FOREIGN, 0 },
		{ "no FATs", 16, { 0 }, 1, -E_FOREIGN, 0 },
		{ "more sectors than the device", 19, { 0xff, 0xff }, 2, -E_CORRUPT, 0 },
		{ "FAT too small for its clusters", 22, { 1, 0 }, 2, -E_CORRUPT, 0 },
		{ "no boot signature", 510, { 0 }, 1, -E_FOREIGN, 0 },
		{ "FAT[0] without the media byte", 0, { 0x12 }, 1, -E_CORRUPT, 3 },
		{ "a FAT entry holding 1", 2 * 50, { 1, 0 }, 2, -E_CORRUPT, 3 },
		{ "a FAT entry past the last cluster", 2 * 60, { 0xf0, 0xff }, 2, -E_CORRUPT, 3 },
		{ "the copies differ", 2 * 100, { 0x33, 0x00 }, 2, -E_CORRUPT, 4 },
		{ "a directory chain looping on itself", 0, { 0 }, 0, -E_CORRUPT, 1 },
		{ "a file longer than its chain", 0, { 0xff, 0xff, 0, 0 }, 4, -E_CORRUPT, 2 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sh("cp %s %s", base, img);
		mount_img(img, 512);
		struct fat_entry e = { 0 }, f = { 0 };
		fat_lookup(&vol, fat_root(&vol), "cowboot", &e);
		struct fat_dir cb = { e.cluster };
		fat_lookup(&vol, cb, "data.bin", &f);
		long fat1 = (long)vol.fat_start * 512, fat2 = fat1 + (long)vol.fat_sectors * 512;
		if (cases[i].op == 1) {   /* cowboot's FAT entry (both copies) points to itself */
			uint8_t x[2] = { (uint8_t)e.cluster, (uint8_t)(e.cluster >> 8) };
			patch(img, fat1 + 2 * (long)e.cluster, x, 2);
			patch(img, fat2 + 2 * (long)e.cluster, x, 2);
		} else if (cases[i].op == 2) {   /* data.bin's size field */
			patch(img, (long)f.sector * 512 + f.offset + 28, cases[i].bytes, 4);
		} else if (cases[i].op == 0) {
			patch(img, cases[i].off, cases[i].bytes, (size_t)cases[i].n);
		} else {
			patch(img, fat1 + cases[i].off, cases[i].bytes, (size_t)cases[i].n);
			if (cases[i].op == 3)   /* the same damage in both copies */
				patch(img, fat2 + cases[i].off, cases[i].bytes, (size_t)cases[i].n);
		}
		uint8_t h0[32], h1[32];
		hash_file(img, h0);
		int rc = mount_img(img, 512);
		if (rc == 0) {
			struct fat_dir d;
			if (cases[i].op == 2) {   /* what was touched is checked: the file, not the tree */
				rc = fat_write_file(&vol, cb, "data.bin", "x", 1, 'a');
			} else {
				rc = fat_mkdir(&vol, fat_root(&vol), "cowboot", &d);
				rc = rc ?: fat_mkdir(&vol, d, "new", &d);
			}
			if (rc == 0)
				fat_sync(&vol);
		}
		hash_file(img, h1);
		char name[200];
		snprintf(name, sizeof(name), "damaged: %s is refused (%s: %s)", cases[i].what, err_name(cases[i].rc), vol.why);
		CHECK(name, rc == cases[i].rc);
		if (rc != cases[i].rc)
			printf("  got %s\n", err_name(rc));
		snprintf(name, sizeof(name), "damaged: %s: the image is untouched", cases[i].what);
		CHECK(name, fdev.writes == 0 && !memcmp(h0, h1, 32));
	}
}

/* Names: which are accepted, and 8.3 names made unique (~1, ~2) for names alike. */
static void test_names(void)
{
	CHECK("names: ordinary long names are valid", fat_name_ok("20261201-195700-QEMU 1.0 serial") == 0);
	CHECK("names: / : * ? \" < > | \\ and control characters are not",
	      fat_name_ok("a/b") && fat_name_ok("a:b") && fat_name_ok("a*") && fat_name_ok("a?") &&
	      fat_name_ok("\"") && fat_name_ok("<") && fat_name_ok(">") && fat_name_ok("|") &&
	      fat_name_ok("\\") && fat_name_ok("a\tb"));
	CHECK("names: empty, trailing dot or space, 256 bytes are not",
	      fat_name_ok("") && fat_name_ok("a.") && fat_name_ok("a ") &&
	      fat_name_ok("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
	char img[600];
	snprintf(img, sizeof(img), "%s/names.img", dir);
	sh("mkfs.vfat -C %s 2048 >/dev/null 2>&1", img);
	mount_img(img, 512);
	int rc = 0;
	rc = rc ?: fat_write_file(&vol, fat_root(&vol), "ov0-QM00001.map", "1", 1, 'w');
	rc = rc ?: fat_write_file(&vol, fat_root(&vol), "ov0-QM00002.map", "2", 1, 'w');
	rc = rc ?: fat_write_file(&vol, fat_root(&vol), "ov0 QM+00003;x.map", "3", 1, 'w');
	rc = rc ?: fat_write_file(&vol, fat_root(&vol), ".hidden", "4", 1, 'w');
	rc = rc ?: fat_sync(&vol);
	struct fat_entry a, b, c, d;
	fat_lookup(&vol, fat_root(&vol), "ov0-QM00001.map", &a);
	fat_lookup(&vol, fat_root(&vol), "ov0-QM00002.map", &b);
	fat_lookup(&vol, fat_root(&vol), "ov0 QM+00003;x.map", &c);
	fat_lookup(&vol, fat_root(&vol), ".hidden", &d);
	CHECK("names: alike long names get OV0-QM~1.MAP, OV0-QM~2.MAP", rc == 0 &&
	      !memcmp(a.short_name, "OV0-QM~1MAP", 11) && !memcmp(b.short_name, "OV0-QM~2MAP", 11));
	CHECK("names: invalid 8.3 characters become _, spaces go", !memcmp(c.short_name, "OV0QM_~1MAP", 11));
	CHECK("names: a leading dot is no extension", !memcmp(d.short_name, "HIDDEN~1   ", 11));
	/* Many names alike (like reports of one day): after ~4, hashed aliases, all unique. */
	struct fat_dir many;
	rc = fat_mkdir(&vol, fat_root(&vol), "cowboot", &many);
	for (int i = 0; rc == 0 && i < 1200; i++) {
		char nm[64];
		snprintf(nm, sizeof(nm), "20261201-%06d-MACHINE", i);
		rc = fat_write_file(&vol, many, nm, "", 0, 'w');
	}
	rc = rc ?: fat_sync(&vol);
	CHECK("names: 1200 files named alike get unique 8.3 aliases", rc == 0);
	if (rc)
		printf("  %s: %s\n", err_name(rc), vol.why);
	CHECK("names: fsck.fat -n clean", fsck_clean(img));
	char lst[200000];
	run_out(lst, sizeof(lst), "mdir -i %s -b ::/cowboot | wc -l", img);
	CHECK("names: mdir lists all 1200", atoi(lst) == 1200);
	CHECK("names: mtype finds them by their long names", mtype_equals(img, "/ov0 QM+00003;x.map", "3", 1) &&
							       mtype_equals(img, "/ov0-QM00002.map", "2", 1));
}

/* Writing over the end marker moves it to the next slot (what follows an end marker was never
 * an entry, so it must not turn into one): here deleted entries left after it. */
static void test_end_marker(void)
{
	char img[600], out[4096];
	snprintf(img, sizeof(img), "%s/end.img", dir);
	sh("mkfs.vfat -C %s -F 16 -s 1 4096 >/dev/null 2>&1 && mmd -i %s ::/d", img, img);
	mount_img(img, 512);
	struct fat_entry e;
	fat_lookup(&vol, fat_root(&vol), "d", &e);
	long at = (long)(vol.data_start + (uint64_t)(e.cluster - 2) * vol.spc) * 512;
	uint8_t junk[32];
	memcpy(junk, "\xe5" "ARBAGE TXT", 11);
	memset(junk + 11, 0x20, 21);
	for (int i = 3; i < 10; i++)
		patch(img, at + 32 * i, junk, 32);   /* entry 2 stays the end marker */
	CHECK("end marker: deleted entries after it, fsck.fat clean", mount_img(img, 512) == 0 && fsck_clean(img));
	struct fat_dir d = { e.cluster };
	int rc = fat_write_file(&vol, d, "A.TXT", "a", 1, 'w');
	rc = rc ?: fat_sync(&vol);
	uint8_t b[64];
	int fd = open(img, O_RDONLY);
	if (pread(fd, b, 64, at + 32 * 3) != 64)
		b[0] = 0xff;
	close(fd);
	run_out(out, sizeof(out), "mdir -i %s -b ::/d", img);
	CHECK("end marker: a file written over it, the next slot is the end marker now",
	      rc == 0 && strstr(out, "A.TXT") && b[0] == 0 && b[32] == 0xe5 && fsck_clean(img));
}

/* The fuzzer's seeds are volumes that mount (their heads, the rest reading as zeros). */
static void test_seeds(void)
{
	const char *root = getenv("COWBOOT_ROOT");
	static const char *const seeds[] = { "fat12-128k.img", "fat16-head.img", "fat32-head.img" };
	static const int types[] = { 12, 16, 32 };
	for (int i = 0; i < 3; i++) {
		char img[600], name[200];
		snprintf(img, sizeof(img), "%s/seed.img", dir);
		sh("cp %s/tests/fuzz/seeds/fat/%s %s && truncate -s 64M %s", root ? root : ".", seeds[i], img, img);
		snprintf(name, sizeof(name), "fuzz seed %s mounts as FAT%d", seeds[i], types[i]);
		CHECK(name, mount_img(img, 512) == 0 && vol.type == types[i]);
	}
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	test_seeds();
	test_names();
	test_kind("fat12", "-F 12", 1440, 512, 12);
	test_kind("fat16", "-F 16 -s 2", 32768, 512, 16);
	test_kind("fat32", "-F 32 -s 1", 40000, 512, 32);
	test_kind("fat16-4k", "-F 16 -S 4096 -s 1", 65536, 4096, 16);
	test_kind("fat32-4k-on-512", "-F 32 -S 4096 -s 1", 300000, 512, 32);
	test_fragmented();
	test_full();
	test_many();
	test_damaged();
	test_end_marker();
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {
	}
	return CHECK_DONE();
}
