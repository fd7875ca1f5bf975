/* The block layer's no-data operations (BLK_WRITE_ZEROES, BLK_DISCARD) against a fake driver on
 * the host: refused before the driver when the disk does not offer them or is protected, range
 * checked, split at the device's own no-data limit with no buffer, counted as writes, run on a
 * partition's disk at its offset, and given a deadline like any write. */
#include "../../drivers/blk.c"
#include "../lib/check.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the kernel around the layer ------------------------------------------------------------- */
static uint64_t now_us = 1000000;
uint64_t time_now_us(void) { return now_us; }
void task_yield(void)
{
	now_us += 1000;
	blk_poll_all();
}
int kprintf(const char *fmt, ...) { (void)fmt; return 0; }
int cmd_said(int rc) { return rc; }
static char last_log[256];
void log_event(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(last_log, sizeof(last_log), fmt, ap);
	va_end(ap);
	(void)lvl;
}
void *kzalloc(size_t n) { return calloc(1, n); }
void kfree(void *p) { free(p); }

/* ---- a fake driver: records what it was given, completes it at the next poll ---------------- */
struct seen { uint8_t op; uint64_t lba; uint32_t count; void *buf; };
static struct seen seen[64];
static int nseen, recovers;
static struct blk_req *held[64];
static int nheld;
static bool hang;   /* requests are taken and never completed */

static int fake_start(struct blk_dev *d, struct blk_req *r)
{
	(void)d;
	if (nseen < 64)
		seen[nseen++] = (struct seen){ r->op, r->lba, r->count, r->buf };
	held[nheld++] = r;
	return 0;
}

static void fake_poll(struct blk_dev *d)
{
	if (hang)
		return;
	for (int i = 0; i < nheld; i++)
		blk_complete(d, held[i], 0, BLK_NO_LBA);
	nheld = 0;
}

static int fake_recover(struct blk_dev *d, struct blk_req *overdue)
{
	(void)d;
	(void)overdue;
	recovers++;
	nheld = 0;
	hang = false;
	return 0;
}

static const struct blk_driver_ops ops = { .start = fake_start, .poll = fake_poll, .recover = fake_recover };

static struct blk_dev disk(const char *name, uint32_t flags)
{
	struct blk_dev d = { .transport = "fake", .sectors = 100000, .lsize = 512, .psize = 512,
			     .flags = flags, .max_sectors = 128, .max_zero_sectors = 4096, .queue_depth = 32,
			     .ops = &ops };
	fmt_snprintf(d.name, sizeof(d.name), "%s", name);
	return d;
}

static void forget(void)
{
	nseen = 0;
	nheld = 0;
}

int main(void)
{
	static struct blk_dev plain, zd, ro, part;
	plain = disk("vd0", 0);
	zd = disk("vd1", BLK_F_ZEROES | BLK_F_DISCARD);
	ro = disk("vd2", BLK_F_ZEROES | BLK_F_DISCARD | BLK_F_SOURCE);
	part = disk("vd1p1", BLK_F_ZEROES | BLK_F_DISCARD);
	part.parent = &zd;
	part.start_lba = 2048;
	part.sectors = 50000;
	blk_register(&plain);
	blk_register(&zd);
	blk_register(&ro);
	blk_register(&part);

	forget();
	CHECK("write-zeroes and discard on a disk that offers neither are refused before the driver",
	      blk_write_zeroes(&plain, 0, 8, NULL) == -E_UNSUPP && blk_discard(&plain, 0, 8) == -E_UNSUPP &&
	      nseen == 0);
	CHECK("on a protected source they are refused as writes are, before the driver",
	      blk_write_zeroes(&ro, 0, 8, NULL) == -E_RDONLY && blk_discard(&ro, 0, 8) == -E_RDONLY && nseen == 0);
	CHECK("past the end they are a range error",
	      blk_write_zeroes(&zd, 99999, 2, NULL) == -E_RANGE && blk_discard(&zd, 100000, 1) == -E_RANGE &&
	      nseen == 0);

	uint64_t w0 = zd.ctr.writes, b0 = zd.ctr.bytes_written;
	forget();
	int rc = blk_write_zeroes(&zd, 1000, 10000, NULL);
	CHECK("a long write-zeroes is split at the device's no-data limit, with no buffer",
	      rc == 0 && nseen == 3 && seen[0].op == BLK_WRITE_ZEROES && seen[0].lba == 1000 &&
	      seen[0].count == 4096 && seen[1].lba == 5096 && seen[1].count == 4096 && seen[2].lba == 9192 &&
	      seen[2].count == 1808 && !seen[0].buf && !seen[1].buf && !seen[2].buf);
	CHECK("write-zeroes counts as writes and as bytes written",
	      zd.ctr.writes > w0 && zd.ctr.bytes_written - b0 == 10000ull * 512);
	forget();
	static uint8_t buf[300 * 512];
	rc = blk_write(&zd, 0, 300, buf, NULL);
	CHECK("a write of the same disk is still split at max_sectors",
	      rc == 0 && nseen == 3 && seen[0].count == 128 && seen[2].count == 44 && seen[1].buf == buf + 128 * 512);
	b0 = zd.ctr.bytes_written;
	forget();
	rc = blk_discard(&zd, 4096, 4096);
	CHECK("a discard within the limit goes as one request, counting no bytes written",
	      rc == 0 && nseen == 1 && seen[0].op == BLK_DISCARD && seen[0].lba == 4096 && seen[0].count == 4096 &&
	      zd.ctr.bytes_written == b0);

	forget();
	rc = blk_write_zeroes(&part, 10, 100, NULL);
	CHECK("on a partition they run on its disk at the partition's offset",
	      rc == 0 && nseen == 1 && seen[0].op == BLK_WRITE_ZEROES && seen[0].lba == 2058 && seen[0].count == 100);
	blk_protect_tree(&part, BLK_F_SOURCE, true);
	forget();
	CHECK("a partition of a protected disk refuses them too",
	      blk_write_zeroes(&part, 0, 8, NULL) == -E_RDONLY && blk_write_zeroes(&zd, 0, 8, NULL) == -E_RDONLY &&
	      nseen == 0);
	blk_protect_tree(&part, BLK_F_SOURCE, false);

	forget();
	hang = true;
	zd.timeout_ms = 500;
	uint64_t t0 = now_us;
	rc = blk_write_zeroes(&zd, 0, 8, NULL);
	CHECK("a write-zeroes the device never answers times out at its deadline and the driver recovers",
	      rc == -E_TIMEOUT && recovers == 1 && now_us - t0 >= 500000 && zd.ctr.timeouts == 1 &&
	      strstr(last_log, "vd1: request at LBA 0 timed out after 500 ms"));
	forget();
	CHECK("after the recovery the disk takes them again", blk_write_zeroes(&zd, 0, 8, NULL) == 0 && nseen == 1);
	return CHECK_DONE();
}
