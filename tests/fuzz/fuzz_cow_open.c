/* libFuzzer target: cow_open on a cow device whose metadata comes from the input (superblocks
 * and the page area overwritten on a freshly formatted cow) must never crash. The source is
 * small (the open hashes its first and last MiB, which is most of a run's work on a big one)
 * and the input lands only where metadata lies, so each run is cheap. */
#include <stdlib.h>
#include <string.h>
#include "../lib/fakedev.h"
#include "../../cow/cow.h"

#define SRC_BYTES (16u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fakedev src, cow;
	static uint8_t *formatted;
	static size_t meta;
	static int ready;
	char why[200];
	if (!ready) {
		fakedev_formatted_pair(&src, SRC_BYTES, &cow, cow_metadata_bytes(SRC_BYTES) + SRC_BYTES);
		struct cow *c;
		struct cow_geometry g = { 0 };
		if (cow_open(&test_env, &cow.bdev, &src.bdev, &c, why, sizeof(why)) == 0) {
			cow_get_geometry(c, &g);
			cow_discard(c);
		}
		meta = g.page_offset + g.page_slots * 4096;   /* superblocks and page area */
		if (meta < 8192 || meta > cow.bdev.size)
			meta = 8192;
		formatted = fakedev_durable_copy(&cow, meta);
		ready = 1;
	}
	memcpy(cow.view, formatted, meta);
	/* The input lands on the metadata: its first bytes choose where. */
	size_t at = size >= 2 ? ((size_t)data[0] << 8 | data[1]) * 512 % meta : 0;
	if (size > 2) {
		size_t n = size - 2 < meta - at ? size - 2 : meta - at;
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
