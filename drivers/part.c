/* Partitions as child disks: the one table parser (fs/parttab.c) runs over each disk through
 * the block layer, and every partition it accepts becomes <disk>p<N>, whose I/O runs on the
 * disk. What the parser refuses is logged once per disk, and the disk stays usable whole. */
#include "blk.h"
#include "../lib/errors.h"
#include "../fs/parttab.h"
#include "../lib/port.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"

#define MAX_PARTS 16

static int add_part(struct blk_dev *disk, const struct part *pt)
{
	struct blk_dev *p = kzalloc(sizeof(*p));
	if (!p)
		return -E_NOMEM;
	fmt_snprintf(p->name, sizeof(p->name), "%sp%u", disk->name, pt->index);
	p->transport = "part";
	p->parent = disk;
	p->start_lba = pt->start / disk->lsize;
	p->sectors = pt->size / disk->lsize;
	p->lsize = disk->lsize;
	p->psize = disk->psize;
	memcpy(p->model, disk->model, sizeof(p->model));
	memcpy(p->serial, disk->serial, sizeof(p->serial));
	p->max_sectors = disk->max_sectors;
	p->max_zero_sectors = disk->max_zero_sectors;
	p->queue_depth = disk->queue_depth;
	p->ops = disk->ops;
	p->drv = disk->drv;
	p->flags = (disk->flags & (BLK_F_BOOT | BLK_F_DEV_RO | BLK_F_FUA | BLK_F_FLUSH |
				    BLK_F_DISCARD | BLK_F_ZEROES)) |
		   (pt->cow_type ? BLK_F_COW_PART : 0);
	int rc = blk_register(p);
	if (rc < 0)
		kfree(p);
	return rc;
}

struct part_io {
	struct blk_dev *disk;
	uint8_t *bounce;               /* one logical sector, for reads smaller than it */
};

/* The parser's byte reads on whole logical sectors (it asks 512 bytes of a 4Kn disk). */
static int part_read(void *ctx, uint64_t off, uint32_t len, void *buf)
{
	struct part_io *io = ctx;
	uint32_t ls = io->disk->lsize;
	if (off % ls == 0 && len % ls == 0)
		return blk_read(io->disk, off / ls, len / ls, buf, NULL);
	if (off % ls + len > ls)
		return -E_ALIGN;
	int rc = blk_read(io->disk, off / ls, 1, io->bounce, NULL);
	if (rc == 0)
		memcpy(buf, io->bounce + off % ls, len);
	return rc;
}

static void part_say(void *ctx, const char *msg)
{
	log_event(LOG_WARN, "disk %s: %s", ((struct blk_dev *)ctx)->name, msg);
}

static void scan_disk(struct blk_dev *d)
{
	struct part_io io = { d, kmalloc(d->lsize) };
	struct part *parts = kmalloc(MAX_PARTS * sizeof(*parts));
	struct parttab t = { .say = part_say, .say_ctx = d };
	if (!io.bounce || !parts) {
		log_event(LOG_WARN, "disk %s: partition table not read: %s", d->name, err_str(-E_NOMEM));
		goto out;
	}
	int rc = parttab_scan(part_read, &io, d->sectors * d->lsize, d->lsize, parts, MAX_PARTS, &t);
	if (rc < 0 && rc != -E_NOENT && rc != -E_CORRUPT)
		log_event(LOG_WARN, "disk %s: partition table not read: %s", d->name, err_str(rc));
	if (rc < 0 || t.scheme == 'r')
		goto out;
	if (t.found > t.n)
		log_event(LOG_WARN, "disk %s: %u partitions, only the first %u are listed", d->name, t.found, t.n);
	for (unsigned i = 0; i < t.n; i++)
		if ((rc = add_part(d, &parts[i])) < 0)
			log_event(LOG_WARN, "disk %s: partition %u not added: %s", d->name, parts[i].index, err_str(rc));
out:
	kfree(parts);
	kfree(io.bounce);
}

/* Disks whose table was read: a disk a driver adds during the boot-time scan (a USB drive that
 * became ready meanwhile) is scanned once, by whichever comes first. */
static struct blk_dev *scanned[128];
static unsigned nscanned;

void part_scan_disk(struct blk_dev *d)
{
	if (d->parent || (d->flags & BLK_F_GONE))
		return;
	for (unsigned i = 0; i < nscanned; i++)
		if (scanned[i] == d)
			return;
	if (nscanned < sizeof(scanned) / sizeof(scanned[0]))
		scanned[nscanned++] = d;
	scan_disk(d);
}

void part_scan_all(void)
{
	int n = blk_count();
	for (int i = 0; i < n; i++)
		part_scan_disk(blk_get(i));
}
