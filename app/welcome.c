/* The first screen after boot, for a person at the machine: the disks found in plain words,
 * which look like a source and which could hold its cow (guessed from partition tables, with
 * no I/O so a failing disk cannot hold up the prompt), and what to type next. */
#include "../kernel/console.h"
#include "welcome.h"
#include "../lib/port.h"
#include "../drivers/blk.h"

static int has_partitions(const struct blk_dev *d)
{
	for (int i = 0; i < blk_count(); i++)
		if (blk_get(i)->parent == d)
			return 1;
	return 0;
}

/* Its first partition of GPT type "cowboot cow" (docs/cow-format.md), or NULL. */
static struct blk_dev *cow_partition(const struct blk_dev *d)
{
	for (int i = 0; i < blk_count(); i++)
		if (blk_get(i)->parent == d && (blk_get(i)->flags & BLK_F_COW_PART))
			return blk_get(i);
	return NULL;
}

void welcome_print(void)
{
	struct blk_dev *src = NULL, *cow = NULL;
	int n = 0;
	for (int i = 0; i < blk_count(); i++)
		n += !blk_get(i)->parent;
	kprintf("\nFound %d disk%s:\n", n, n == 1 ? "" : "s");
	for (int i = 0; i < blk_count(); i++) {
		struct blk_dev *d = blk_get(i);
		if (d->parent)
			continue;
		char size[24];
		blk_format_size(size, sizeof(size), d->sectors * d->lsize);
		const char *what;
		struct blk_dev *cp = cow_partition(d);
		char cowpart[48];
		fmt_snprintf(cowpart, sizeof(cowpart), "%s %s is a cowboot cow partition",
			     d->flags & BLK_F_BOOT ? "; its" : "its", cp ? cp->name : "");
		if (d->flags & BLK_F_BOOT)
			what = "the disk cowboot started from";
		else if (cp)
			what = "";
		else if (has_partitions(d)) {
			what = "holds partitions: looks like a source to rescue";
			if (!src || d->sectors * d->lsize > src->sectors * src->lsize)
				src = d;
		} else
			what = "no partition table: could hold a cow (check it is not needed)";
		kprintf("  %-8s %10s  %-24.24s  %s%s%s\n", d->name, size, d->model[0] ? d->model : "(no model)", what,
			cp ? cowpart : "", d->flags & BLK_F_DEV_RO ? " (write-protected)" : "");
	}
	/* A partition typed for a cow is the first choice for one, the boot stick's too. */
	for (int i = 0; i < blk_count(); i++) {
		struct blk_dev *d = blk_get(i);
		if (!(d->flags & BLK_F_COW_PART) || (d->flags & BLK_F_DEV_RO) || !src || d->parent == src)
			continue;
		if (d->sectors * d->lsize >= src->sectors * src->lsize && (!cow || d->sectors < cow->sectors))
			cow = d;
	}
	for (int i = 0; i < blk_count() && !(cow && (cow->flags & BLK_F_COW_PART)); i++) {
		struct blk_dev *d = blk_get(i);
		if (d->parent || d == src || (d->flags & (BLK_F_BOOT | BLK_F_DEV_RO)) || has_partitions(d))
			continue;
		if (src && d->sectors * d->lsize >= src->sectors * src->lsize && (!cow || d->sectors < cow->sectors))
			cow = d;
	}
	if (src && cow)
		kprintf("To rescue %s into %s: cow format %s %s --yes, then cow open %s %s, then rescue ov0 and wait.\n",
			src->name, cow->name, cow->name, src->name, src->name, cow->name);
	else if (src)
		kprintf("No blank disk as large as %s was found to hold its cow: attach one, or see disks.\n",
			src->name);
	kprintf("Health and identity: info <disk>. All commands: help. Type below and press Enter.\n");
}
