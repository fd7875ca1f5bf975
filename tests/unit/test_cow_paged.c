/* The version-2 cow (paged map): what a commit writes after 100 changes, bad pages refused by
 * name (bad checksum, a slot outside the metadata area, a page named twice, a loop, overlapping
 * ranges), version-1 cows opened and upgraded (with a power cut after every write of the
 * upgrade), and a power cut after every write of 8 commits on a map grown (uncut) past
 * 1,100,000 extents (COWBOOT_PAGED_EXTENTS sets another size). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../lib/fakedev.h"
#include "../../cow/cow.h"
#include "../../lib/crc32c.h"
#include "../../lib/errors.h"
#include "../../cow/mappage.h"
#include "../lib/rng.h"

static uint64_t rng = 0x1234567ull;
static uint64_t rnd(void) { return xorshift64(&rng); }

/* ---- a sparse device: metadata kept (with a volatile cache a cut can lose), data dropped -- */

/* The first META_MAX bytes are kept, and DATA_WIN bytes from data_base (the data area's first
 * bytes, where the growth test's rescued data lands); anything else reads as zeros. */
#define META_MAX (64u << 20)
#define DATA_WIN (8u << 20)
#define MD_BYTES (META_MAX + DATA_WIN)
struct memdev {
	uint8_t *durable, *view;
	struct pend { uint64_t off; uint32_t len; } *pend;
	size_t npend, cappend;
	uint64_t writes, bytes, cut_after, data_base;
	uint64_t snap_every;                 /* a copy cut and checked after every so many writes */
	void (*snap)(struct memdev *d);
	int dead;
};

/* Where byte `off` of the device is kept (n bytes of it), or n == 0. */
static uint64_t md_where(const struct memdev *d, uint64_t off, uint64_t len, uint64_t *n)
{
	*n = 0;
	if (off < META_MAX) {
		*n = len > META_MAX - off ? META_MAX - off : len;
		return off;
	}
	if (d->data_base && off >= d->data_base && off - d->data_base < DATA_WIN) {
		uint64_t o = off - d->data_base;
		*n = len > DATA_WIN - o ? DATA_WIN - o : len;
		return META_MAX + o;
	}
	return 0;
}

static void md_submit(void *ctx, struct cow_io *io)
{
	struct memdev *d = ctx;
	uint64_t len = io->len, n;
	uint64_t off = md_where(d, io->off, len, &n);
	io->status = 0;
	if (d->dead) {
		io->status = -E_IO;
		return;
	}
	if (io->op == COW_IO_READ) {
		memset(io->buf, 0, len);
		if (n)
			memcpy(io->buf, d->view + off, n);
	} else if (io->op == COW_IO_WRITE) {
		d->writes++;
		d->bytes += len;
		if (n) {
			memcpy(d->view + off, io->buf, n);
			if (d->npend == d->cappend) {
				d->cappend = d->cappend ? d->cappend * 2 : 64;
				d->pend = realloc(d->pend, d->cappend * sizeof(*d->pend));
			}
			d->pend[d->npend++] = (struct pend){ off, (uint32_t)n };
		}
		if (d->cut_after && d->writes >= d->cut_after)
			d->dead = 1;
		if (d->snap_every && d->writes % d->snap_every == 0)
			d->snap(d);
	} else {
		for (size_t i = 0; i < d->npend; i++)
			memcpy(d->durable + d->pend[i].off, d->view + d->pend[i].off, d->pend[i].len);
		d->npend = 0;
	}
}
static int md_wait(void *ctx, struct cow_io *io)
{
	(void)ctx;
	return io->status;
}
/* The source: every 4-byte word holds its own offset's low bits, so a sector stored in the
 * wrong place shows. */
static void src_submit(void *ctx, struct cow_io *io)
{
	(void)ctx;
	if (io->op == COW_IO_READ)
		for (uint32_t i = 0; i < io->len; i += 4) {
			uint32_t v = (uint32_t)((io->off + i) * 2654435761u);
			memcpy((uint8_t *)io->buf + i, &v, 4);
		}
	io->status = io->op == COW_IO_WRITE ? -E_IO : 0;
}

/* A power cut: the durable bytes plus each unflushed write kept or lost at random (whole 512-
 * byte sectors, so a page can also tear). */
static void md_cut(struct memdev *d)
{
	for (size_t i = 0; i < d->npend; i++)
		for (uint32_t s = 0; s < d->pend[i].len; s += 512)
			if (rnd() % 2)
				memcpy(d->durable + d->pend[i].off + s, d->view + d->pend[i].off + s, 512);
	d->npend = 0;
	memcpy(d->view, d->durable, MD_BYTES);
	d->dead = 0;
	d->cut_after = 0;
}

#define SRC_BYTES (1ull << 40)   /* 1 TiB of 512-byte sectors: 16 M extents possible */
static struct memdev md;
static struct cow_bdev src = { NULL, SRC_BYTES, 512, 4096, "PAGED", "P1", { 0 }, 0, src_submit, md_wait };
static struct cow_bdev cd = { &md, SRC_BYTES + (1ull << 30), 512, 4096, "", "", { 0 }, 0, md_submit, md_wait };

static void md_reset(void)
{
	if (!md.durable) {
		md.durable = calloc(1, MD_BYTES);
		md.view = calloc(1, MD_BYTES);
	}
	memset(md.durable, 0, MD_BYTES);
	memset(md.view, 0, MD_BYTES);
	md.data_base = 0;
	md.snap_every = 0;
	md.npend = 0;
	md.dead = 0;
	md.cut_after = 0;
}

/* A fingerprint of the whole map. */
static uint32_t map_hash(struct cow *c)
{
	const struct cow_map *m = cow_get_map(c);
	uint32_t h = 0;
	for (const struct cow_extent *x = cow_map_get(m, 0); x; x = cow_map_next(m, x)) {
		uint64_t v[2] = { x->start, (uint64_t)x->state << 8 | x->written };
		h = crc32c(h, v, sizeof(v));
	}
	return h;
}

static int open_cd(struct cow **c, char *why)
{
	return cow_open(&test_env, &cd, &src, c, why, 200);
}

/* Scattered bad sectors until the map holds `want` extents. */
static void grow(struct cow *c, uint64_t want)
{
	while (cow_get_map(c)->n + 2 <= want)
		cow_set_state(c, (rnd() % (SRC_BYTES / 512 - 8)) * 512, 512 * (1 + rnd() % 4), '-');
}

/* ---- commits cost what changed --------------------------------------------------------------- */

static void test_commit_size(void)
{
	char why[200];
	struct cow *c;
	md_reset();
	CHECK("format a 1 TiB source's cow", cow_format(&test_env, &cd, &src, 4096, why, 200) == 0);
	CHECK("it opens", open_cd(&c, why) == 0);
	struct cow_geometry g;
	cow_get_geometry(c, &g);
	CHECK("version 3 with room for 16 M extents", g.version == 3 && g.max_extents == 16u << 20);
	grow(c, 200000);
	cow_sync(c);
	/* 100 changes where a rescue makes them: one after the other in the source. */
	uint64_t at = (rnd() % (SRC_BYTES / 512 / 2)) * 512;
	for (int i = 0; i < 100; i++)
		cow_set_state(c, at + (uint64_t)i * 8192, 512, i % 2 ? '-' : '/');
	uint64_t b0 = md.bytes;
	cow_sync(c);
	uint64_t local = md.bytes - b0;
	for (int i = 0; i < 100; i++)
		cow_set_state(c, (rnd() % (SRC_BYTES / 512 - 8)) * 512, 512, '*');
	b0 = md.bytes;
	cow_sync(c);
	uint64_t scattered = md.bytes - b0;
	printf("  200000 extents: a commit after 100 changes in a row writes %llu KiB, after 100 scattered %llu KiB\n",
	       (unsigned long long)local / 1024, (unsigned long long)scattered / 1024);
	CHECK("a commit after 100 nearby changes writes at most 256 KiB", local <= 256 * 1024);
	CHECK("after 100 scattered ones at most 256 KiB (into the log)", scattered <= 256 * 1024);
	uint32_t h = map_hash(c);
	uint64_t n = cow_get_map(c)->n;
	cow_close(c);
	CHECK("the map reopens the same", open_cd(&c, why) == 0 && map_hash(c) == h && cow_get_map(c)->n == n);
	/* A commit with nothing changed writes only a superblock. */
	cow_sync(c);
	b0 = md.bytes;
	cow_sync(c);
	CHECK("a commit of nothing writes one superblock block", md.bytes - b0 == 4096);
	cow_close(c);
}

/* ---- bad pages, refused by name ----------------------------------------------------------- */

static uint64_t sb_u64(int which, unsigned off)
{
	uint64_t v;
	memcpy(&v, md.durable + which * 4096 + off, 8);
	return v;
}

static void sb_put(int which, unsigned off, uint64_t v)
{
	uint8_t *b = md.durable + which * 4096;
	memcpy(b + off, &v, 8);
	uint32_t crc = crc32c(0, b, 508);
	memcpy(b + 508, &crc, 4);
}

static uint8_t *page_at(uint32_t slot)
{
	return md.durable + 8192 + (uint64_t)slot * 4096;
}

static void reseal(uint32_t slot)
{
	struct map_page_hdr *h = (struct map_page_hdr *)page_at(slot);
	h->crc = map_page_crc(h);
}

static int newest_sb(void)
{
	return sb_u64(1, 40) > sb_u64(0, 40);
}

/* Refusal of the newest state's map, with both superblocks pointing at the same damage. */
static int refused_with(const char *what)
{
	char why[200] = "";
	struct cow *c;
	memcpy(md.view, md.durable, MD_BYTES);
	int rc = open_cd(&c, why);
	if (rc == 0) {
		cow_discard(c);
		printf("  opened despite: %s\n", what);
		return 0;
	}
	if (!strstr(why, what)) {
		printf("  refused with '%s', not '%s'\n", why, what);
		return 0;
	}
	return 1;
}

static void test_bad_pages(void)
{
	char why[200];
	struct cow *c;
	md_reset();
	cow_format(&test_env, &cd, &src, 4096, why, 200);
	open_cd(&c, why);
	grow(c, 300000);   /* two groups at least */
	cow_close(c);
	open_cd(&c, why);
	cow_sync(c);       /* both superblocks now name the same pages */
	cow_close(c);
	uint8_t *save = malloc(META_MAX);
	memcpy(save, md.durable, META_MAX);
	int s = newest_sb();
	uint32_t root = (uint32_t)sb_u64(s, 88);
	struct map_idx_page *r = (struct map_idx_page *)page_at(root);
	CHECK("the map has several index pages", r->h.n >= 2);
	uint32_t ix = r->e[0].slot;
	struct map_idx_page *ip = (struct map_idx_page *)page_at(ix);
	uint32_t leaf = ip->e[3].slot;

	/* Re-seal the chain above an index page, so that only the intended defect remains. */
#define FIX_CHAIN() do { reseal(ix); r->e[0].crc = ip->h.crc; reseal(root); \
		sb_put(0, 104, r->h.crc); sb_put(1, 104, r->h.crc); } while (0)

	page_at(leaf)[200] ^= 1;
	CHECK("a map page with a bad checksum is refused, named by slot and byte", refused_with("has a bad checksum") &&
	      refused_with("map page at slot"));
	memcpy(md.durable, save, META_MAX);

	ip->e[3].slot = 0x7fffff;
	FIX_CHAIN();
	CHECK("an index naming a slot outside the metadata area is refused", refused_with("outside the metadata area"));
	memcpy(md.durable, save, META_MAX);

	ip->e[4] = ip->e[3];
	FIX_CHAIN();
	CHECK("two entries naming one page are refused", refused_with("already in the map"));
	memcpy(md.durable, save, META_MAX);

	ip->e[5].slot = root;
	FIX_CHAIN();
	CHECK("an index pointing back at the root (a loop) is refused", refused_with("a loop"));
	memcpy(md.durable, save, META_MAX);

	/* Two pages claiming one range: a leaf's extents moved before its neighbour's. */
	struct cow_map_chunk *lp = (struct cow_map_chunk *)page_at(leaf);
	struct cow_map_chunk *prev = (struct cow_map_chunk *)page_at(ip->e[2].slot);
	uint64_t back = ENT_START(prev->e[prev->h.n - 1]);
	lp->e[0] = ENT(back, 0, 0) | ENT_FLAGS(lp->e[0]);
	lp->h.first = back;
	reseal(leaf);
	ip->e[3].crc = lp->h.crc;
	FIX_CHAIN();
	CHECK("two pages claiming one range are refused", refused_with("two pages claim one range"));
	memcpy(md.durable, save, META_MAX);

	/* A page only the newest superblock names is damaged: the older state opens. */
	memcpy(md.view, md.durable, MD_BYTES);
	open_cd(&c, why);
	uint32_t h_old = map_hash(c);
	cow_set_state(c, 4096 * 512, 512, '/');
	cow_close(c);
	s = newest_sb();
	root = (uint32_t)sb_u64(s, 88);
	page_at(root)[300] ^= 1;
	memcpy(md.view, md.durable, MD_BYTES);
	CHECK("a damaged newest root: the cow opens from the older superblock's map",
	      open_cd(&c, why) == 0 && map_hash(c) == h_old);
	cow_discard(c);
	free(save);
}

/* ---- version 3's log: replayed at open, refused by name when bad ----------------------------- */

static void sb_put32(int which, unsigned off, uint32_t v)
{
	uint8_t *b = md.durable + which * 4096;
	memcpy(b + off, &v, 4);
	uint32_t crc = crc32c(0, b, 508);
	memcpy(b + 508, &crc, 4);
}

static uint32_t sb_u32(int which, unsigned off)
{
	uint32_t v;
	memcpy(&v, md.durable + which * 4096 + off, 4);
	return v;
}

#define SB_LOG_SLOT 368
#define SB_LOG_CRC  372

static void test_log(void)
{
	char why[200];
	struct cow *c;
	md_reset();
	cow_format(&test_env, &cd, &src, 4096, why, 200);
	open_cd(&c, why);
	grow(c, 300000);
	cow_sync(c);
	cow_sync(c);
	for (int i = 0; i < 300; i++)
		cow_set_state(c, (rnd() % (SRC_BYTES / 512 - 8)) * 512, 512, i % 2 ? '*' : '/');
	uint32_t h = map_hash(c);
	uint64_t n = cow_get_map(c)->n;
	cow_sync(c);
	cow_sync(c);   /* both superblocks name the same log */
	cow_discard(c);
	int s = newest_sb();
	uint32_t ls = sb_u32(s, SB_LOG_SLOT);
	CHECK("a commit of scattered changes leaves them in a log", ls != 0xffffffffu && sb_u32(s ^ 1, SB_LOG_SLOT) == ls);
	memcpy(md.view, md.durable, MD_BYTES);
	CHECK("which an open replays over the map pages", open_cd(&c, why) == 0 && map_hash(c) == h && cow_get_map(c)->n == n);
	cow_discard(c);
	uint8_t *save = malloc(META_MAX);
	memcpy(save, md.durable, META_MAX);
	struct map_idx_page *ix = (struct map_idx_page *)page_at(ls);
	CHECK("the log's index page names its pages", ix->h.magic == PAGE_LOGIX && ix->h.n >= 1);
	uint32_t lslot = ix->e[ix->h.n - 1].slot;
	struct map_log_page *lp = (struct map_log_page *)page_at(lslot);
#define FIX_LOG() do { lp->h.crc = map_page_crc(lp); ix->e[ix->h.n - 1].crc = lp->h.crc; reseal(ls); \
		sb_put32(0, SB_LOG_CRC, ix->h.crc); sb_put32(1, SB_LOG_CRC, ix->h.crc); } while (0)

	page_at(lslot)[700] ^= 1;
	CHECK("a log page with a bad checksum is refused, named by slot", refused_with("log page at slot") &&
	      refused_with("has a bad checksum"));
	memcpy(md.durable, save, META_MAX);

	lp->r[0].start = SRC_BYTES / 512;
	FIX_LOG();
	CHECK("a logged change outside the source is refused", refused_with("that cannot be"));
	memcpy(md.durable, save, META_MAX);

	lp->r[0].count_flags = lp->r[0].count_flags | 7;
	FIX_LOG();
	CHECK("a logged change to no state is refused", refused_with("that cannot be"));
	memcpy(md.durable, save, META_MAX);

	ix->e[ix->h.n - 1].slot = 0x7fffff;
	reseal(ls);
	sb_put32(0, SB_LOG_CRC, ix->h.crc);
	sb_put32(1, SB_LOG_CRC, ix->h.crc);
	CHECK("a log index naming a slot outside the metadata area is refused", refused_with("outside the metadata area"));
	memcpy(md.durable, save, META_MAX);

	ix->e[ix->h.n - 1].slot = (uint32_t)sb_u64(s, 88);   /* the root */
	ix->e[ix->h.n - 1].crc = ((struct map_page_hdr *)page_at((uint32_t)sb_u64(s, 88)))->crc;
	reseal(ls);
	sb_put32(0, SB_LOG_CRC, ix->h.crc);
	sb_put32(1, SB_LOG_CRC, ix->h.crc);
	CHECK("a log naming a page of the map is refused", refused_with("already in the map"));
	memcpy(md.durable, save, META_MAX);

	/* Damage only the newest superblock's log: the older state opens. */
	memcpy(md.view, md.durable, MD_BYTES);
	open_cd(&c, why);
	for (int i = 0; i < 50; i++)
		cow_set_state(c, (rnd() % (SRC_BYTES / 512 - 8)) * 512, 512, '-');
	cow_close(c);
	s = newest_sb();
	ls = sb_u32(s, SB_LOG_SLOT);
	ix = (struct map_idx_page *)page_at(ls);
	page_at(ix->e[ix->h.n - 1].slot)[900] ^= 1;
	memcpy(md.view, md.durable, MD_BYTES);
	CHECK("a damaged newest log: the cow opens from the older superblock's state",
	      open_cd(&c, why) == 0 && map_hash(c) == h);
	cow_discard(c);
	free(save);
}

/* ---- version 2 still opens and commits, and upgrades to 3 --------------------------------- */

static void test_v2(void)
{
	char why[200];
	struct cow *c;
	struct cow_geometry g;
	md_reset();
	CHECK("a version-2 cow can still be made (for this test)",
	      cow_format_version(&test_env, &cd, &src, 4096, 2, why, 200) == 0);
	open_cd(&c, why);
	grow(c, 100000);
	cow_close(c);
	open_cd(&c, why);
	cow_get_geometry(c, &g);
	for (int i = 0; i < 100; i++)
		cow_set_state(c, (rnd() % (SRC_BYTES / 512 - 8)) * 512, 512, '/');
	uint64_t b0 = md.bytes;
	cow_sync(c);
	uint64_t v2bytes = md.bytes - b0;
	uint32_t h = map_hash(c);
	cow_close(c);
	CHECK("it opens, commits as version 2 (every changed page)", g.version == 2 && v2bytes > 50 * 4096);
	memcpy(md.view, md.durable, MD_BYTES);
	CHECK("and reopens with its map", open_cd(&c, why) == 0 && map_hash(c) == h);
	cow_get_geometry(c, &g);
	CHECK("still version 2", g.version == 2);
	cow_discard(c);
	uint8_t *v2 = malloc(META_MAX);
	memcpy(v2, md.durable, META_MAX);
	/* A cut after every write of the upgrade: version 2 or 3, the same map. */
	md.writes = 0;
	CHECK("upgrade to version 3", cow_upgrade(&test_env, &cd, why, 200) == 0);
	uint64_t total = md.writes;
	int bad = 0;
	for (uint64_t k = 1; k <= total; k++) {
		memcpy(md.durable, v2, META_MAX);
		memcpy(md.view, v2, META_MAX);
		md.npend = 0;
		md.writes = 0;
		md.cut_after = k;
		cow_upgrade(&test_env, &cd, why, 200);
		md_cut(&md);
		if (open_cd(&c, why) < 0) {
			bad++;
			continue;
		}
		bad += map_hash(c) != h;
		cow_discard(c);
	}
	CHECK("a cut anywhere in it leaves a cow that opens with the same map", bad == 0 && total >= 1);
	memcpy(md.durable, v2, META_MAX);
	memcpy(md.view, v2, META_MAX);
	md.npend = 0;
	CHECK("upgrade again in full", cow_upgrade(&test_env, &cd, why, 200) == 0);
	open_cd(&c, why);
	cow_get_geometry(c, &g);
	CHECK("the upgraded cow is version 3 with the same map", g.version == 3 && map_hash(c) == h);
	for (int i = 0; i < 100; i++)
		cow_set_state(c, (rnd() % (SRC_BYTES / 512 - 8)) * 512, 512, '*');
	b0 = md.bytes;
	cow_sync(c);
	uint64_t v3bytes = md.bytes - b0;
	h = map_hash(c);
	cow_close(c);
	CHECK("and commits into its log from then on", v3bytes < v2bytes);
	memcpy(md.view, md.durable, MD_BYTES);
	CHECK("which reopens the same", open_cd(&c, why) == 0 && map_hash(c) == h);
	cow_discard(c);
	free(v2);
}

/* ---- version 1 still opens, and upgrades safely ---------------------------------------------- */

static void test_v1(void)
{
	struct fakedev fs, fc;
	char why[200];
	fakedev_init(&fs, 4u << 20, 512, "OLD", "V1");
	for (uint64_t i = 0; i < fs.bdev.size; i++)
		fs.view[i] = fs.durable[i] = (uint8_t)(i * 7 + (i >> 9));
	fakedev_init(&fc, 12u << 20, 512, "COW", "C");
	CHECK("a version-1 cow can still be made (for this test)",
	      cow_format_version(&test_env, &fc.bdev, &fs.bdev, 4096, 1, why, 200) == 0);
	struct cow *c;
	static uint8_t buf[64 << 10];
	CHECK("and opens", cow_open(&test_env, &fc.bdev, &fs.bdev, &c, why, 200) == 0);
	uint64_t bad;
	for (int i = 0; i < 300; i++) {
		uint64_t s = rnd() % 8000;
		if (i % 3)
			cow_set_state(c, s * 512, 512, '-');
		else
			cow_rescue_read(c, s * 512, 4096, buf, &bad);
		if (i % 50 == 0)
			cow_sync(c);
	}
	uint32_t h = map_hash(c);
	cow_close(c);
	struct cow_geometry g;
	cow_open(&test_env, &fc.bdev, &fs.bdev, &c, why, 200);
	cow_get_geometry(c, &g);
	CHECK("version 1 reopens with its map", g.version == 1 && map_hash(c) == h);
	cow_close(c);
	uint8_t *v1 = fakedev_durable_copy(&fc, fc.bdev.size);

	/* A power cut after every write of the upgrade: the cow opens, as version 1 or 2, with the same map. */
	fc.writes = 0;
	fc.cut_after = (uint64_t)-1;
	CHECK("upgrade", cow_upgrade(&test_env, &fc.bdev, why, 200) == 0);
	uint64_t total = fc.writes;
	int bad_cuts = 0;
	for (uint64_t k = 1; k <= total; k++) {
		fakedev_restore(&fc, v1);
		fc.writes = 0;
		fc.cut_after = k;
		cow_upgrade(&test_env, &fc.bdev, why, 200);
		fakedev_power_cut(&fc, (uint32_t)k);
		fc.cut_after = 0;
		if (cow_open(&test_env, &fc.bdev, &fs.bdev, &c, why, 200) < 0) {
			bad_cuts++;
			continue;
		}
		bad_cuts += map_hash(c) != h;
		cow_discard(c);
	}
	printf("  upgrade: %llu writes, a cut after each\n", (unsigned long long)total);
	CHECK("a cut anywhere in the upgrade leaves a cow that opens with the same map", bad_cuts == 0 && total >= 3);
	fakedev_restore(&fc, v1);
	CHECK("upgrade again in full", cow_upgrade(&test_env, &fc.bdev, why, 200) == 0);
	CHECK("a second upgrade says it already is version 3", cow_upgrade(&test_env, &fc.bdev, why, 200) == 1);
	cow_open(&test_env, &fc.bdev, &fs.bdev, &c, why, 200);
	cow_get_geometry(c, &g);
	CHECK("the upgraded cow is version 3 with the same map", g.version == 3 && map_hash(c) == h);
	for (int i = 0; i < 200; i++)
		cow_set_state(c, (rnd() % 8000) * 512, 512, '/');
	h = map_hash(c);
	cow_close(c);
	cow_open(&test_env, &fc.bdev, &fs.bdev, &c, why, 200);
	CHECK("and keeps committing", map_hash(c) == h);
	uint64_t rd;
	int same = 1;
	for (uint64_t s = 0; s < 8192 && same; s += 8) {
		const struct cow_extent *x = cow_map_at(cow_get_map(c), s);
		if (x->state == '+' && cow_ov_read(c, s * 512, 512, buf, &rd) == 0)
			same = !memcmp(buf, fs.view + s * 512, 512);
	}
	CHECK("its finished sectors still equal the source", same);
	cow_close(c);
	free(v1);
	fakedev_free(&fc);
	fakedev_free(&fs);
}

/* ---- a power cut after every write of commits on a map past 1,100,000 extents ------------------- */

/* Grown first (not cut): 1,100,000 scattered extents over several index pages. Then cut after
 * every write: commits of a rescue's nearby progress, and one of scattered changes. */
#define CUT_COMMITS 8
static void workload(struct cow *c, uint32_t *hashes, int *ncommits)
{
	uint64_t save = rng;
	rng = 99;
	for (int k = 0; k < CUT_COMMITS; k++) {
		uint64_t base = (rnd() % (SRC_BYTES / 512 - 100000));
		int nch = k == CUT_COMMITS - 1 ? 40 : 300;
		for (int i = 0; i < nch; i++) {
			uint64_t s = k == CUT_COMMITS - 1 ? rnd() % (SRC_BYTES / 512 - 8) : base + (uint64_t)i * 16;
			if (cow_set_state(c, s * 512, 512, i % 3 ? '-' : '/') < 0)
				goto out;
		}
		if (hashes)
			hashes[k] = map_hash(c);
		if (cow_sync(c) < 0)
			goto out;
		if (ncommits)
			*ncommits = k + 1;
	}
out:
	rng = save;
}

static void test_power_cuts_growing(void)
{
	char why[200];
	struct cow *c;
	md_reset();
	cow_format(&test_env, &cd, &src, 4096, why, 200);
	memcpy(md.view, md.durable, MD_BYTES);
	open_cd(&c, why);
	const char *env_n = getenv("COWBOOT_PAGED_EXTENTS");
	uint64_t want = env_n ? strtoull(env_n, NULL, 0) : 1100000;
	grow(c, want + 2);
	cow_close(c);
	open_cd(&c, why);
	cow_close(c);   /* both superblocks name pages of the grown map */
	uint8_t *grown = malloc(META_MAX);
	memcpy(grown, md.durable, META_MAX);
	static uint32_t hashes[CUT_COMMITS];
	open_cd(&c, why);
	uint32_t h0 = map_hash(c);
	uint64_t n0 = cow_get_map(c)->n;
	md.writes = 0;
	workload(c, hashes, NULL);
	uint64_t total = md.writes;
	cow_close(c);
	printf("  %llu extents, then %llu device writes in %d commits, a cut after each\n", (unsigned long long)n0,
	       (unsigned long long)total, CUT_COMMITS);
	CHECK("the map grew to the extents wanted (1,100,000 unless COWBOOT_PAGED_EXTENTS)", n0 >= want);
	int cuts = 0, bad_open = 0, bad_state = 0;
	for (uint64_t k = 1; k <= total; k++) {
		memcpy(md.durable, grown, META_MAX);
		memcpy(md.view, grown, META_MAX);
		md.npend = 0;
		if (open_cd(&c, why) < 0) {
			bad_open++;
			continue;
		}
		md.writes = 0;
		md.cut_after = k;
		int done = 0;
		workload(c, NULL, &done);
		cow_discard(c);
		md_cut(&md);
		cuts++;
		if (open_cd(&c, why) < 0) {
			printf("  cut %llu: %s\n", (unsigned long long)k, why);
			bad_open++;
			continue;
		}
		/* The map is the state of the last commit that ended, or of the one cut short. */
		uint32_t h = map_hash(c);
		int ok = h == (done ? hashes[done - 1] : h0) || (done < CUT_COMMITS && h == hashes[done]);
		if (!ok)
			printf("  cut %llu after %d commits: the map is no committed state\n", (unsigned long long)k, done);
		bad_state += !ok;
		cow_discard(c);
	}
	CHECK("the cow opens after a cut at every write", bad_open == 0 && cuts == (int)total && total > 20);
	CHECK("and its map is always the last committed one (or the one the cut interrupted)", bad_state == 0);
	free(grown);
}

/* ---- a power cut during the growth of a map past 1,000,000 extents ------------------------ */

/* Commits of GROW_BATCH scattered changes (bad sectors over the whole source, finished ones
 * rescued in its first DATA_WIN bytes) from an empty map until it passes GROW_TO extents. The
 * workload runs once; after every `snap_every`-th device write a copy of the device is cut
 * there (each unflushed sector kept or lost at random), opened and checked: its map must be the
 * last committed one or the one being committed, and every sector it calls finished must read
 * back as the source. */
#define GROW_BATCH 6000
#define GROW_TO    1050000
static struct memdev chk;
static struct cow_bdev chk_cd = { &chk, SRC_BYTES + (1ull << 30), 512, 4096, "", "", { 0 }, 0, md_submit, md_wait };
static uint32_t grow_committed, grow_pending;
static int grow_cuts, grow_bad_open, grow_bad_state, grow_bad_data;
static uint64_t grow_max_n, grow_compared;

static void grow_workload(struct cow *c)
{
	uint64_t save = rng;
	rng = 4242;
	static uint8_t buf[4096];
	uint64_t bad;
	grow_committed = map_hash(c);
	while (cow_get_map(c)->n < GROW_TO) {
		for (int i = 0; i < GROW_BATCH; i++) {
			if (i % 200 == 0)
				cow_rescue_read(c, (rnd() % (DATA_WIN / 4096)) * 4096, 4096, buf, &bad);
			else
				cow_set_state(c, (rnd() % (SRC_BYTES / 512 - 8)) * 512, 512 * (1 + rnd() % 4), i % 3 ? '-' : '/');
		}
		grow_pending = map_hash(c);
		if (cow_sync(c) < 0)
			break;
		grow_committed = grow_pending;
	}
	grow_max_n = cow_get_map(c)->n;
	rng = save;
}

static void grow_snap(struct memdev *d)
{
	memcpy(chk.durable, d->durable, MD_BYTES);
	for (size_t i = 0; i < d->npend; i++)
		for (uint32_t s = 0; s < d->pend[i].len; s += 512)
			if (rnd() % 2)
				memcpy(chk.durable + d->pend[i].off + s, d->view + d->pend[i].off + s, 512);
	memcpy(chk.view, chk.durable, MD_BYTES);
	chk.npend = 0;
	chk.data_base = d->data_base;
	grow_cuts++;
	char why[200];
	struct cow *c;
	if (cow_open(&test_env, &chk_cd, &src, &c, why, 200) < 0) {
		printf("  cut after write %llu: %s\n", (unsigned long long)d->writes, why);
		grow_bad_open++;
		return;
	}
	uint32_t h = map_hash(c);
	if (h != grow_committed && h != grow_pending) {
		printf("  cut after write %llu: the map is no committed state\n", (unsigned long long)d->writes);
		grow_bad_state++;
	}
	static uint8_t got[4096], want[4096];
	uint64_t bad;
	for (uint64_t s = 0; s < DATA_WIN / 512; s += 8) {
		const struct cow_extent *x = cow_map_at(cow_get_map(c), s);
		if (x->state != '+' || x->start + x->count < s + 8)
			continue;
		struct cow_io io = { .op = COW_IO_READ, .len = 4096, .off = s * 512, .buf = want };
		src_submit(NULL, &io);
		grow_compared += 8;
		if (cow_ov_read(c, s * 512, 4096, got, &bad) < 0 || memcmp(got, want, 4096)) {
			printf("  cut after write %llu: finished sector %llu differs from the source\n",
			       (unsigned long long)d->writes, (unsigned long long)s);
			grow_bad_data++;
			break;
		}
	}
	cow_discard(c);
}

static void test_power_cuts_during_growth(void)
{
	char why[200];
	struct cow *c;
	md_reset();
	if (!chk.durable) {
		chk.durable = calloc(1, MD_BYTES);
		chk.view = calloc(1, MD_BYTES);
	}
	cow_format(&test_env, &cd, &src, 4096, why, 200);
	memcpy(md.view, md.durable, MD_BYTES);
	uint8_t *fresh = malloc(META_MAX);
	memcpy(fresh, md.durable, META_MAX);
	open_cd(&c, why);
	struct cow_geometry g;
	cow_get_geometry(c, &g);
	md.data_base = g.data_offset;
	/* Once uncut, to count the writes; then again, cut and checked at points spread over them. */
	md.writes = 0;
	grow_workload(c);
	uint64_t total = md.writes;
	cow_discard(c);
	const char *env_cuts = getenv("COWBOOT_GROW_CUTS");
	uint64_t want = env_cuts ? strtoull(env_cuts, NULL, 0) : 150;
	md_reset();
	memcpy(md.durable, fresh, META_MAX);
	memcpy(md.view, fresh, META_MAX);
	md.data_base = g.data_offset;
	open_cd(&c, why);
	md.writes = 0;
	md.snap = grow_snap;
	md.snap_every = want && total / want ? total / want : 1;
	grow_workload(c);
	uint64_t every = md.snap_every;
	md.snap_every = 0;
	cow_close(c);
	printf("  grown to %llu extents in %llu device writes; a cut after every %llu-th write (%d cuts, %llu finished "
	       "sectors compared)\n", (unsigned long long)grow_max_n, (unsigned long long)total, (unsigned long long)every,
	       grow_cuts, (unsigned long long)grow_compared);
	CHECK("the map grew past 1,000,000 extents under the cuts", grow_max_n >= GROW_TO);
	CHECK("a cut anywhere in the growth leaves a cow that opens", grow_bad_open == 0 && grow_cuts >= (int)(want / 2));
	CHECK("with the last committed map or the one being committed", grow_bad_state == 0);
	CHECK("and every sector it calls finished equals the source", grow_bad_data == 0 && grow_compared > 0);
	free(fresh);
}

int main(void)
{
	test_commit_size();
	test_bad_pages();
	test_log();
	test_v2();
	test_v1();
	test_power_cuts_growing();
	test_power_cuts_during_growth();
	return CHECK_DONE();
}
