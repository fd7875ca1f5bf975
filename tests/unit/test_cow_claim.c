/* cow_ov_claim: rescued sectors recorded as written without data, one commit for several writes
 * after it, and a power cut after every single device write of claim / commit / write rounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../lib/fakedev.h"
#include "../../cow/cow.h"
#include "../../lib/errors.h"

#define SRC_SIZE (1u << 20)
#define LS 512u
#define ROUNDS 6
#define WLEN 8192u

static void fill(struct fakedev *s)
{
	for (uint64_t i = 0; i < SRC_SIZE; i++)
		s->view[i] = s->durable[i] = (uint8_t)(i * 151 + (i >> 9) * 3);
}

static int open_cow(struct fakedev *cow, struct fakedev *src, struct cow **c)
{
	char why[200];
	return cow_open(&test_env, &cow->bdev, &src->bdev, c, why, sizeof(why));
}

/* The first half rescued; then rounds of: claim two ranges, one commit, write them. */
static int workload(struct cow *c, const struct fakedev *src)
{
	static uint8_t w[WLEN];
	if (cow_store_rescued(c, 0, SRC_SIZE / 2, src->view) < 0 || cow_sync(c) < 0)
		return -1;
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t a = (uint64_t)r * 3 * WLEN, b = a + WLEN + 4096;   /* two claims, one commit */
		if (cow_ov_claim(c, a, WLEN) < 0 || cow_ov_claim(c, b, WLEN) < 0 || cow_sync(c) < 0)
			return -1;
		memset(w, 0x40 + r, WLEN);
		if (cow_ov_write(c, a, WLEN, w) < 0)
			return -1;
		memset(w, 0x80 + r, WLEN);
		if (cow_ov_write(c, b, WLEN, w) < 0)
			return -1;
	}
	return cow_sync(c);
}

static void test_claim(void)
{
	struct fakedev src, cow;
	char why[200];
	fakedev_init(&src, SRC_SIZE, LS, "DISK", "S");
	fill(&src);
	fakedev_init(&cow, 4u << 20, LS, "COW", "C");
	cow_format(&test_env, &cow.bdev, &src.bdev, 4096, why, sizeof(why));
	struct cow *c;
	CHECK("the cow opens", open_cow(&cow, &src, &c) == 0);
	static uint8_t buf[SRC_SIZE], w[WLEN];
	uint64_t bad;
	cow_store_rescued(c, 0, SRC_SIZE / 2, src.view);
	cow_sync(c);
	CHECK("a claim of sectors never rescued claims nothing", cow_ov_claim(c, SRC_SIZE / 2, 8192) == 0);
	CHECK("a claim straddling the rescued edge claims only the rescued sectors",
	      cow_ov_claim(c, SRC_SIZE / 2 - 4096, 8192) == 4096 / LS);
	CHECK("unaligned claims are refused", cow_ov_claim(c, 100, 512) == -E_ALIGN);
	CHECK("claims past the source are refused", cow_ov_claim(c, SRC_SIZE, 512) == -E_RANGE);
	const struct cow_map *m = cow_get_map(c);
	CHECK("claimed sectors are written, still finished", cow_map_at(m, SRC_SIZE / LS / 2 - 1)->written &&
	      cow_map_at(m, SRC_SIZE / LS / 2 - 1)->state == COW_FINISHED && !cow_map_at(m, SRC_SIZE / LS / 2)->written);
	CHECK("a claimed range reads as before", cow_ov_read(c, 0, SRC_SIZE, buf, &bad) == 0 && !memcmp(buf, src.view, SRC_SIZE));
	CHECK("a second claim of it claims nothing", cow_ov_claim(c, SRC_SIZE / 2 - 4096, 4096) == 0);
	cow_ov_claim(c, 0, 3 * WLEN);
	cow_sync(c);
	struct cow_counters k0, k1;
	cow_get_counters(c, &k0);
	memset(w, 0x33, WLEN);
	int ok = cow_ov_write(c, 0, WLEN, w) == 0 && cow_ov_write(c, 2 * WLEN, WLEN, w) == 0;
	cow_get_counters(c, &k1);
	CHECK("writes over claimed and committed sectors commit nothing themselves", ok && k1.commits == k0.commits);
	memset(w, 0x44, WLEN);
	cow_get_counters(c, &k0);
	cow_ov_write(c, 4 * WLEN, WLEN, w);
	cow_get_counters(c, &k1);
	CHECK("a write over rescued sectors not claimed still commits first", k1.commits == k0.commits + 1);
	cow_close(c);
	fakedev_free(&cow);

	/* Power cuts: the workload cut after every device write, each sector then checked. */
	fakedev_init(&cow, 4u << 20, LS, "COW", "C");
	cow_format(&test_env, &cow.bdev, &src.bdev, 4096, why, sizeof(why));
	uint8_t *formatted = fakedev_durable_copy(&cow, cow.bdev.size);
	open_cow(&cow, &src, &c);
	cow.writes = 0;
	cow.cut_after = (uint64_t)-1;
	int dry = workload(c, &src);
	uint64_t total = cow.writes;
	cow_close(c);
	CHECK("the claim workload runs", dry == 0 && total > 20);
	int bad_open = 0, bad_sector = 0, cuts = 0;
	for (uint64_t k = 1; k <= total; k++) {
		fakedev_restore(&cow, formatted);
		if (open_cow(&cow, &src, &c) < 0) {
			bad_open++;
			continue;
		}
		cow.writes = 0;
		cow.cut_after = k;
		workload(c, &src);
		cow.dead = 1;
		cow_close(c);
		fakedev_power_cut(&cow, (uint32_t)k);
		cuts++;
		if (open_cow(&cow, &src, &c) < 0) {
			bad_open++;
			continue;
		}
		m = cow_get_map(c);
		cow_ov_read(c, 0, SRC_SIZE, buf, &bad);
		for (uint64_t s = 0; s < SRC_SIZE / LS; s++) {
			const struct cow_extent *e = cow_map_at(m, s);
			const uint8_t *got = buf + s * LS, *was = src.view + s * LS;
			if (!e->written) {
				bad_sector += memcmp(got, was, LS) != 0;   /* rescued or not: the source's */
				continue;
			}
			/* Written: the source's data (claimed, not yet overwritten) or a round's pattern. */
			int ok2 = !memcmp(got, was, LS);
			for (int v = 0; v < 256 && !ok2; v++) {
				int same = 1;
				for (uint32_t i = 0; i < LS && same; i++)
					same = got[i] == (uint8_t)v;
				ok2 = same && ((v >= 0x40 && v < 0x40 + ROUNDS) || (v >= 0x80 && v < 0x80 + ROUNDS));
			}
			bad_sector += !ok2;
		}
		cow_close(c);
	}
	printf("claim power cuts: %d cut points over %llu device writes\n", cuts, (unsigned long long)total);
	CHECK("the cow opens after every power cut", bad_open == 0 && cuts == (int)total);
	CHECK("after every cut each sector holds the source's data or data written to it", bad_sector == 0);
	CHECK("every request submitted was waited for", cow.abandoned == 0 && src.abandoned == 0);
	free(formatted);
	fakedev_free(&cow);
	fakedev_free(&src);
}

int main(void)
{
	test_claim();
	return CHECK_DONE();
}
