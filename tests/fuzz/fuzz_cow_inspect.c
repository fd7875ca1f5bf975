/* libFuzzer target: cow_inspect (cowtool check) on hostile metadata must never crash. The input
 * lands on a formatted cow's metadata, and its first byte can re-seal the superblocks' and
 * checkpoint headers' CRCs, so valid-looking structures with nonsense inside are reached. */
#include <stdlib.h>
#include <string.h>
#include "../lib/fakedev.h"
#include "../../cow/cow.h"
#include "../../lib/crc32c.h"

static void say(void *ctx, const char *line)
{
	*(size_t *)ctx += strlen(line);
}

static void reseal(uint8_t *p, size_t covered, size_t crc_at)
{
	uint32_t crc = crc32c(0, p, covered);
	memcpy(p + crc_at, &crc, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fakedev src, cow;
	static uint8_t *formatted;
	static uint64_t slot1;
	static int ready;
	char why[200];
	if (!ready) {
		fakedev_formatted_pair(&src, 256 * 1024, &cow, 2u << 20);
		struct cow *c;
		if (cow_open(&test_env, &cow.bdev, &src.bdev, &c, why, sizeof(why)) == 0) {
			struct cow_geometry g;
			cow_get_geometry(c, &g);
			slot1 = 8192 + g.checkpoint_bytes;
			cow_set_state(c, 4096, 4096, '-');
			cow_close(c);   /* a checkpoint in the other slot and a second superblock */
		}
		formatted = fakedev_durable_copy(&cow, cow.bdev.size);
		memcpy(cow.view, cow.durable, cow.bdev.size);
		ready = 1;
	}
	memcpy(cow.view, formatted, 1u << 20);   /* the metadata: data starts at 1 MiB here */
	if (size < 3)
		return 0;
	size_t at = ((size_t)data[1] << 8 | data[2]) * 64 % (1u << 20);
	size_t n = size - 3 < (1u << 20) - at ? size - 3 : (1u << 20) - at;
	memcpy(cow.view + at, data + 3, n);
	if (data[0] & 1)
		reseal(cow.view, 508, 508);
	if (data[0] & 2)
		reseal(cow.view + 4096, 508, 508);
	if (data[0] & 4)
		reseal(cow.view + 8192, 36, 36);
	if ((data[0] & 8) && slot1 + 64 < (1u << 20))
		reseal(cow.view + slot1, 36, 36);
	size_t said = 0;
	cow_inspect(&test_env, &cow.bdev, say, &said);
	fakedev_drop_cache(&cow);
	return 0;
}
