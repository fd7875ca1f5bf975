/* libFuzzer target: the map pages (cow/mappage.h) under cow_open and cow_inspect. The input
 * lands on the page area of a cow whose map spans many pages, under a log of changes not yet in
 * them (version 3); then, as the first byte asks, every page's own CRC, the CRCs its parents hold
 * of it, and the superblocks are re-sealed, so that pages which look valid but hold nonsense
 * (counts, slots, loops, overlaps, impossible logged changes) are reached. */
#include <stdlib.h>
#include <string.h>
#include "../lib/fakedev.h"
#include "../../cow/cow.h"
#include "../../lib/crc32c.h"
#include "../../cow/mappage.h"

#define SRC_BYTES (96u << 20)   /* room for 24 K extents: more map pages than a commit sweeps */
#define COW_BYTES (SRC_BYTES + (4u << 20))
#define META 8192u

static void say(void *ctx, const char *line)
{
	*(size_t *)ctx += strlen(line);
}

static uint8_t *slot_page(struct fakedev *d, uint64_t slot, uint64_t nslots)
{
	return slot < nslots ? d->view + META + slot * MAP_PAGE : NULL;
}

/* Leaves and log pages first, then index pages, then roots: each parent takes its children's CRCs. */
static void reseal_tree(struct fakedev *d, uint64_t nslots)
{
	static const uint32_t order[5] = { PAGE_LEAF, PAGE_LOG, PAGE_INDEX, PAGE_LOGIX, PAGE_ROOT };
	for (int lvl = 0; lvl < 5; lvl++)
		for (uint64_t s = 0; s < nslots; s++) {
			struct map_idx_page *p = (struct map_idx_page *)slot_page(d, s, nslots);
			if (p->h.magic != order[lvl])
				continue;
			for (uint32_t i = 0; lvl >= 2 && i < p->h.n && i < IDX_MAX; i++) {
				const struct map_page_hdr *ch = (const void *)slot_page(d, p->e[i].slot, nslots);
				if (ch)
					p->e[i].crc = ch->crc;
			}
			p->h.crc = map_page_crc(p);
		}
}

static void reseal_sb(struct fakedev *d, int which, uint64_t nslots)
{
	uint8_t *b = d->view + which * 4096;
	uint64_t root;
	memcpy(&root, b + 88, 8);
	const struct map_page_hdr *r = (const void *)slot_page(d, root, nslots);
	if (r) {
		uint64_t crc = r->crc;
		memcpy(b + 104, &crc, 8);
	}
	uint32_t log;
	memcpy(&log, b + 368, 4);
	const struct map_page_hdr *l = (const void *)slot_page(d, log, nslots);
	if (l)
		memcpy(b + 372, &l->crc, 4);
	uint32_t crc = crc32c(0, b, 508);
	memcpy(b + 508, &crc, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fakedev src, cow;
	static uint8_t *formatted;
	static uint64_t nslots;
	static int ready;
	char why[200];
	if (!ready) {
		fakedev_formatted_pair(&src, SRC_BYTES, &cow, COW_BYTES);
		struct cow *c;
		if (cow_open(&test_env, &cow.bdev, &src.bdev, &c, why, sizeof(why)) == 0) {
			struct cow_geometry g;
			cow_get_geometry(c, &g);
			nslots = g.page_slots;
			for (uint64_t s = 1; s < 24000; s += 2)   /* some 60 map pages */
				cow_set_state(c, s * 512, 512, "-/*"[s % 3]);
			cow_sync(c);
			uint32_t r = 7;
			for (int i = 0; i < 300; i++) {   /* scattered changes: into the log */
				r = r * 1103515245u + 12345u;
				cow_set_state(c, (r >> 8) % 24000 * 512, 512, "?*-"[i % 3]);
			}
			cow_sync(c);
			cow_set_state(c, 0, 4096, '-');
			cow_close(c);
		}
		formatted = fakedev_durable_copy(&cow, META + nslots * MAP_PAGE);
		memcpy(cow.view, cow.durable, META + nslots * MAP_PAGE);
		ready = 1;
	}
	uint64_t meta = META + nslots * MAP_PAGE;
	memcpy(cow.view, formatted, meta);
	if (size < 3)
		return 0;
	size_t at = META + ((size_t)data[1] << 8 | data[2]) * 8 % (meta - META);
	size_t n = size - 3 < meta - at ? size - 3 : meta - at;
	memcpy(cow.view + at, data + 3, n);
	if (data[0] & 1)
		reseal_tree(&cow, nslots);
	if (data[0] & 2)
		reseal_sb(&cow, 0, nslots);
	if (data[0] & 4)
		reseal_sb(&cow, 1, nslots);
	struct cow *c;
	/* (no source: its identity is not what is fuzzed, and hashing its samples would cost each run) */
	if (cow_open(&test_env, &cow.bdev, NULL, &c, why, sizeof(why)) == 0) {
		uint8_t buf[4096];
		uint64_t bad;
		cow_ov_read(c, 0, sizeof(buf), buf, &bad);
		cow_set_state(c, 8192, 512, '-');
		cow_discard(c);
	}
	memcpy(cow.view, formatted, meta);
	memcpy(cow.view + at, data + 3, n);
	if (data[0] & 1)
		reseal_tree(&cow, nslots);
	if (data[0] & 2)
		reseal_sb(&cow, 0, nslots);
	size_t said = 0;
	cow_inspect(&test_env, &cow.bdev, say, &said);
	fakedev_drop_cache(&cow);
	return 0;
}
