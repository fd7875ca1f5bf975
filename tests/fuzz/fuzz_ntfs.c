/* libFuzzer target: the NTFS reader and the partition-table parser on a real mkntfs volume
 * whose boot sector or MFT records are overwritten by the input must never crash or hang. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../lib/errors.h"
#include "../../fs/ntfs.h"
#include "../../fs/parttab.h"

struct mem { uint8_t *p; size_t size; };

static int mem_read(void *ctx, uint64_t off, uint32_t len, void *buf)
{
	struct mem *m = ctx;
	if (off > m->size || len > m->size - off)
		return -E_RANGE;
	memcpy(buf, m->p + off, len);
	return 0;
}

static void *xalloc(size_t n) { return malloc(n); }
static const struct cow_env env = { xalloc, free, NULL, NULL };

static uint8_t *base;
static size_t base_size;
static uint64_t mft_off, idx_off;

/* A small volume made once by mkntfs, with a few files (ntfscp needs no mount). */
static void make_base(void)
{
	char dir[] = "/tmp/fuzz_ntfs.XXXXXX", cmd[1024], path[600];
	if (!mkdtemp(dir))
		return;
	snprintf(cmd, sizeof(cmd),
		 "cd %s && truncate -s 3M v.img && mkntfs -F -Q -q -c 1024 v.img >/dev/null 2>&1 && "
		 "head -c 5000 /dev/zero > f && for i in $(seq 1 40); do ntfscp -q v.img f file_$i.txt >/dev/null 2>&1; done",
		 dir);
	if (system(cmd) == 0) {
		snprintf(path, sizeof(path), "%s/v.img", dir);
		FILE *f = fopen(path, "rb");
		if (f) {
			base = malloc(3 << 20);
			base_size = base ? fread(base, 1, 3 << 20, f) : 0;
			fclose(f);
		}
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {
	}
	struct mem m = { base, base_size };
	struct ntfs_vol v;
	if (base && ntfs_open(&v, &env, mem_read, &m, 0, base_size) == 0) {
		mft_off = v.mft_lcn * v.cluster;
		struct ntfs_run *r;
		uint32_t n;
		uint64_t size;
		if (ntfs_attr_runs(&v, NTFS_ROOT, 0xA0, "$I30", &r, &n, &size) == 0) {
			if (n)
				idx_off = r[0].lcn * v.cluster;
			free(r);
		}
		ntfs_close(&v);
	}
	fprintf(stderr, "fuzz_ntfs: base volume %zu bytes, MFT at 0x%llx, root index at 0x%llx\n", base_size,
		(unsigned long long)mft_off, (unsigned long long)idx_off);
}

static int count(void *ctx, const struct ntfs_file *f) { (void)f; (*(int *)ctx)++; return 0; }
static int count_e(void *ctx, const struct ntfs_dirent *e) { (void)e; (*(int *)ctx)++; return 0; }
static int emit(void *ctx, int group, uint64_t off, uint64_t len) { (void)group; (void)off; (void)len; (*(int *)ctx)++; return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static uint8_t *disk;
	if (!ready) {
		make_base();
		disk = malloc(base_size ? base_size : 1);
		ready = 1;
	}
	/* The partition-table parser on the input as the start of a disk. */
	uint8_t tab[64 * 512] = { 0 };
	memcpy(tab, data, size < sizeof(tab) ? size : sizeof(tab));
	struct mem tm = { tab, sizeof(tab) };
	struct part parts[8];
	struct parttab pt = { 0 };
	parttab_scan(mem_read, &tm, sizeof(tab), 512, parts, 8, &pt);
	if (!base_size || size < 2)
		return 0;
	/* The first byte picks the target (boot sector, MFT records, root index), the second
	 * the 512-byte slot within it; the rest overwrites from there. */
	memcpy(disk, base, base_size);
	uint64_t at = data[0] % 3 == 0 ? 0 : data[0] % 3 == 1 ? mft_off + (uint64_t)data[1] * 512 % (64 * 1024) :
		idx_off + (uint64_t)data[1] * 512 % 4096;
	if (at < base_size) {
		size_t n = size - 2 < base_size - at ? size - 2 : base_size - at;
		memcpy(disk + at, data + 2, n);
	}
	struct mem m = { disk, base_size };
	struct ntfs_vol v;
	if (ntfs_open(&v, &env, mem_read, &m, 0, base_size) == 0) {
		int c = 0;
		uint64_t rec;
		char path[NTFS_PATH_MAX];
		ntfs_walk(&v, "*.txt", count, &c);
		ntfs_dir_list(&v, NTFS_ROOT, count_e, &c);
		ntfs_domain(&v, NULL, emit, &c);
		if (ntfs_lookup(&v, "/file_7.txt", &rec) == 0) {
			uint8_t buf[5000];
			ntfs_file_read(&v, rec, 0, sizeof(buf), buf);
			ntfs_path(&v, rec, path, sizeof(path));
		}
		ntfs_close(&v);
	}
	return 0;
}
