/* libFuzzer target: the FAT writer mounting, listing, creating and writing on hostile images
 * must never crash, hang or touch memory out of bounds. The input is the head of a volume
 * (seeds: real mkfs.vfat images, tests/fuzz/seeds/fat/); the device past it reads as zeros. */
#include <stdlib.h>
#include <string.h>
#include "../../lib/errors.h"
#include "../../fs/fat.h"

#define DEV_BYTES (64u << 20)
#define HEAD_MAX (1u << 20)

struct mem { uint8_t *p; size_t size; };

static int mem_read(void *ctx, uint64_t lba, uint32_t count, void *buf)
{
	struct mem *m = ctx;
	uint64_t off = lba * 512, len = (uint64_t)count * 512;
	if (off > DEV_BYTES || len > DEV_BYTES - off)
		return -E_RANGE;
	memset(buf, 0, len);
	if (off < m->size)
		memcpy(buf, m->p + off, off + len > m->size ? m->size - off : len);
	return 0;
}

static int mem_write(void *ctx, uint64_t lba, uint32_t count, const void *buf)
{
	struct mem *m = ctx;
	uint64_t off = lba * 512, len = (uint64_t)count * 512;
	if (off > DEV_BYTES || len > DEV_BYTES - off)
		return -E_RANGE;
	if (off < m->size)   /* past the head, writes are dropped */
		memcpy(m->p + off, buf, off + len > m->size ? m->size - off : len);
	return 0;
}

static int mem_flush(void *ctx)
{
	(void)ctx;
	return 0;
}

static int count_fn(void *ctx, const char *name, const struct fat_entry *e)
{
	(void)name;
	(void)e;
	return ++*(int *)ctx > 100000;
}

static uint8_t work[FAT_WORK_BYTES], data[70000], back[70000];
static struct fat_vol vol;

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	if (size > HEAD_MAX)
		return 0;
	struct mem m = { malloc(size + 1), size };
	memcpy(m.p, in, size);
	struct fat_dev d = { &m, 512, DEV_BYTES / 512, mem_read, mem_write, mem_flush };
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	if (fat_mount(&vol, &d, work) == 0) {
		int n = 0;
		uint32_t len;
		struct fat_dir root = fat_root(&vol), cb, s;
		fat_list(&vol, root, count_fn, &n);
		fat_read_file(&vol, root, "README.TXT", back, sizeof(back), &len);
		if (fat_mkdir(&vol, root, "cowboot", &cb) == 0 &&
		    fat_mkdir(&vol, cb, "20261201-195700-QEMU serial", &s) == 0) {
			fat_write_file(&vol, s, "events.log", data, 3000, 'w');
			fat_write_file(&vol, s, "events.log", data, 9000, 'a');
			fat_write_file(&vol, s, "ov0-QM00001.map", data, sizeof(data), 'w');
			fat_write_file(&vol, s, "ov0-QM00001.map", data, 100, 'w');
			fat_read_file(&vol, s, "events.log", back, sizeof(back), &len);
			fat_list(&vol, s, count_fn, &n);
		}
		fat_write_file(&vol, root, "a long name in the root directory.txt", data, 700, 'w');
		fat_sync(&vol);
		if (fat_mount(&vol, &d, work) == 0)
			fat_list(&vol, fat_root(&vol), count_fn, &n);
	}
	free(m.p);
	return 0;
}
