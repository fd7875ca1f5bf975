/* Test helper for test_rescue_bigmap.py: makes <cow> a version-1 cow (checkpoints and a journal,
 * the format before the paged map) of <source>, with a few hundred scattered bad and non-scraped
 * sectors and some rescued ranges committed in it, so that the appliance's `cow upgrade` has an
 * old cow to convert. Built by the test against the host library. */
#include <stdio.h>
#include <stdlib.h>
#include "tools/lib_filedev.h"
#include "cow/cow.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mkcow_v1 <cow> <source>\n");
		return 2;
	}
	struct filedev cd, sd;
	if (filedev_open(&cd, argv[1], 1) < 0 || filedev_open(&sd, argv[2], 0) < 0) {
		perror("mkcow_v1: open");
		return 2;
	}
	char why[200] = "";
	struct cow *c;
	if (cow_format_version(&host_env, &cd.bdev, &sd.bdev, 4096, 1, why, sizeof(why)) < 0 ||
	    cow_open(&host_env, &cd.bdev, &sd.bdev, &c, why, sizeof(why)) < 0) {
		fprintf(stderr, "mkcow_v1: %s\n", why);
		return 2;
	}
	uint64_t sectors = sd.bdev.size / 512, r = 12345;
	static unsigned char buf[8192];
	uint64_t bad;
	for (int i = 0; i < 600; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t s = (r >> 20) % (sectors - 16);
		int rc = i % 4 == 0 ? cow_rescue_read(c, s / 8 * 4096, 8192, buf, &bad)
				    : cow_set_state(c, s * 512, 512, i % 4 == 1 ? '-' : '/');
		if (rc < 0 || (i % 100 == 99 && cow_sync(c) < 0)) {
			fprintf(stderr, "mkcow_v1: change %d failed (%d)\n", i, rc);
			return 2;
		}
	}
	int rc = cow_close(c);
	filedev_close(&cd);
	filedev_close(&sd);
	return rc < 0 ? 2 : 0;
}
