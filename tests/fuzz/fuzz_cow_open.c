/* libFuzzer target: cow_open on a cow device whose metadata comes from the input (superblocks,
 * checkpoint and journal areas overwritten on a freshly formatted cow) must never crash. */
#include <stdlib.h>
#include <string.h>
#include "../lib/fakedev.h"
#include "../../cow/cow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fakedev src, cow;
	static uint8_t *formatted;
	static int ready;
	char why[200];
	if (!ready) {
		fakedev_formatted_pair(&src, 256 * 1024, &cow, 2u << 20);
		formatted = fakedev_durable_copy(&cow, cow.bdev.size);
		ready = 1;
	}
	memcpy(cow.view, formatted, 1u << 20);   /* the metadata: data starts at 1 MiB here */
	/* The input lands on the metadata: its first bytes choose where. */
	size_t at = size >= 2 ? ((size_t)data[0] << 8 | data[1]) * 512 % (1u << 20) : 0;
	if (size > 2) {
		size_t n = size - 2 < cow.bdev.size - at ? size - 2 : cow.bdev.size - at;
		memcpy(cow.view + at, data + 2, n);
	}
	memcpy(cow.view, data, size < 1024 ? size : 1024);
	struct cow *c;
	if (cow_open(&test_env, &cow.bdev, &src.bdev, &c, why, sizeof(why)) == 0) {
		uint8_t buf[4096];
		uint64_t bad;
		cow_ov_read(c, 0, sizeof(buf), buf, &bad);
		cow_close(c);
	}
	fakedev_drop_cache(&cow);
	return 0;
}
