/* Partitions: the GPT (primary header, else the backup at the last LBA; CRCs checked) or an MBR's
 * primary entries become child disks <disk>p<N> whose I/O the block layer runs on the disk. */
#include "blk.h"
#include "../cow/port.h"
#include "../kernel/lib_crc32.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"

#define MAX_PARTS 16

struct __attribute__((packed)) gpt_header {
	char sig[8];
	uint32_t revision, size, crc, reserved;
	uint64_t my_lba, alt_lba, first_usable, last_usable;
	uint8_t disk_guid[16];
	uint64_t entries_lba;
	uint32_t nentries, entry_size, entries_crc;
};

static int add_part(struct blk_dev *disk, int n, uint64_t start, uint64_t count)
{
	if (!count || start >= disk->sectors || count > disk->sectors - start)
		return -E_RANGE;
	struct blk_dev *p = kzalloc(sizeof(*p));
	if (!p)
		return -E_NOMEM;
	fmt_snprintf(p->name, sizeof(p->name), "%sp%d", disk->name, n);
	p->transport = "part";
	p->parent = disk;
	p->start_lba = start;
	p->sectors = count;
	p->lsize = disk->lsize;
	p->psize = disk->psize;
	memcpy(p->model, disk->model, sizeof(p->model));
	memcpy(p->serial, disk->serial, sizeof(p->serial));
	p->max_sectors = disk->max_sectors;
	p->queue_depth = disk->queue_depth;
	p->ops = disk->ops;
	p->drv = disk->drv;
	p->flags = disk->flags & (BLK_F_BOOT | BLK_F_DEV_RO | BLK_F_FUA | BLK_F_FLUSH);
	int rc = blk_register(p);
	if (rc < 0)
		kfree(p);
	return rc;
}

/* A GPT header at `lba` with valid CRCs; its entries are read into `ents` (capped). */
static int read_gpt(struct blk_dev *d, uint64_t lba, uint8_t *sector, uint8_t **ents,
		    struct gpt_header *h)
{
	if (blk_read(d, lba, 1, sector, NULL) < 0)
		return -E_IO;
	memcpy(h, sector, sizeof(*h));
	if (memcmp(h->sig, "EFI PART", 8) || h->size < 92 || h->size > d->lsize)
		return -E_FOREIGN;
	struct gpt_header tmp = *h;
	tmp.crc = 0;
	uint8_t buf[512];
	memcpy(buf, sector, h->size);
	memcpy(buf, &tmp, sizeof(tmp));
	if (crc32_ieee(0, buf, h->size) != h->crc)
		return -E_CRC;
	if (h->entry_size < 128 || h->entry_size > 1024 || h->nentries > 1024)
		return -E_CORRUPT;
	uint64_t bytes = (uint64_t)h->nentries * h->entry_size;
	uint32_t secs = (uint32_t)((bytes + d->lsize - 1) / d->lsize);
	*ents = kmalloc((size_t)secs * d->lsize);
	if (!*ents)
		return -E_NOMEM;
	if (blk_read(d, h->entries_lba, secs, *ents, NULL) < 0 ||
	    crc32_ieee(0, *ents, (size_t)bytes) != h->entries_crc) {
		kfree(*ents);
		*ents = NULL;
		return -E_CRC;
	}
	return 0;
}

static void scan_disk(struct blk_dev *d)
{
	uint8_t *sector = kmalloc(d->lsize);
	uint8_t *ents = NULL;
	struct gpt_header h;
	if (!sector)
		return;
	int rc = read_gpt(d, 1, sector, &ents, &h);
	if (rc < 0 && rc != -E_FOREIGN && rc != -E_IO) {
		log_event(LOG_WARN, "%s: primary GPT: %s, trying the backup", d->name, err_str(rc));
		rc = read_gpt(d, d->sectors - 1, sector, &ents, &h);
	}
	if (rc == 0) {
		int n = 0;
		static const uint8_t unused[16];
		for (uint32_t i = 0; i < h.nentries && n < MAX_PARTS; i++) {
			const uint8_t *e = ents + (size_t)i * h.entry_size;
			if (!memcmp(e, unused, 16))
				continue;
			uint64_t first, last;
			memcpy(&first, e + 32, 8);
			memcpy(&last, e + 40, 8);
			if (last >= first && add_part(d, (int)i + 1, first, last - first + 1) == 0)
				n++;
		}
		kfree(ents);
		goto out;
	}
	/* No GPT: an MBR's primary entries (a protective 0xEE entry means a GPT we could not read). */
	if (blk_read(d, 0, 1, sector, NULL) < 0 || sector[510] != 0x55 || sector[511] != 0xaa)
		goto out;
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = sector + 446 + 16 * i;
		uint32_t start, count;
		memcpy(&start, e + 8, 4);
		memcpy(&count, e + 12, 4);
		if (e[0] != 0x00 && e[0] != 0x80)
			goto out;   /* not a partition table (a FAT boot sector, say) */
		if (e[4] == 0 || e[4] == 0xee || e[4] == 0x05 || e[4] == 0x0f || e[4] == 0x85)
			continue;   /* empty, protective, or extended (logical partitions: not read) */
		add_part(d, i + 1, start, count);
	}
out:
	kfree(sector);
}

void part_scan_disk(struct blk_dev *d)
{
	if (!d->parent && !(d->flags & BLK_F_GONE))
		scan_disk(d);
}

void part_scan_all(void)
{
	int n = blk_count();
	for (int i = 0; i < n; i++) {
		struct blk_dev *d = blk_get(i);
		if (!d->parent && !(d->flags & BLK_F_GONE))
			scan_disk(d);
	}
}
