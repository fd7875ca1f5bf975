/* The first screen after boot, for a person at the machine: the disks found in plain words,
 * each one's health (SMART, the NVMe health log: one small command a disk, each against a short
 * deadline and all of them against a budget, so a hung disk holds up the prompt by seconds at
 * most), which look like a source and which could hold its cow (guessed from partition tables,
 * reading no sector; a failing disk is never offered for a cow), and what to type next. */
#include "../kernel/console.h"
#include "welcome.h"
#include "../lib/port.h"
#include "../drivers/blk.h"
#include "../kernel/log.h"
#include "../kernel/time.h"

#define HEALTH_TIMEOUT_MS 1000   /* one disk's SMART or health log */
#define HEALTH_BUDGET_MS  3000   /* every disk's: past it the rest are not asked */
#define MAX_LISTED 128           /* the block layer's most disks and partitions */

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

/* A disk's health in words (h->words) and its mark on the screen: red when failing, yellow with a
 * warning or when it could not be read in time. */
static int health_read(struct blk_dev *d, deadline_t budget, struct blk_health *h)
{
	*h = (struct blk_health){ .verdict = BLK_HEALTH_UNKNOWN };
	int rc = 1;
	if (!d->ops->health)
		fmt_snprintf(h->words, sizeof(h->words), "health: not offered by %s", d->transport);
	else if (deadline_passed(budget) && (rc = -E_TIMEOUT))
		fmt_snprintf(h->words, sizeof(h->words), "health: not read (the time for it at boot ran out; info %s asks)",
			     d->name);
	else if ((rc = d->ops->health(d, h, HEALTH_TIMEOUT_MS)) < 0)
		fmt_snprintf(h->words, sizeof(h->words), "health: not read (%s)", err_str(rc));
	if (h->verdict == BLK_HEALTH_FAILING)
		return CON_SEV_ERROR;
	return h->verdict == BLK_HEALTH_WARNING || rc == -E_TIMEOUT ? CON_SEV_WARN : 0;
}

/* What the health reads said of disk d (failing[] by block-layer index). */
static bool is_failing(const uint8_t *failing, const struct blk_dev *d)
{
	for (int i = 0; i < blk_count() && i < MAX_LISTED; i++)
		if (blk_get(i) == d)
			return failing[i];
	return false;
}

void welcome_print(void)
{
	struct blk_dev *src = NULL, *cow = NULL;
	int n = 0;
	for (int i = 0; i < blk_count(); i++)
		n += !blk_get(i)->parent;
	kprintf("\nFound %d disk%s:\n", n, n == 1 ? "" : "s");
	uint64_t t0 = time_now_us();
	deadline_t budget = deadline_in_ms(HEALTH_BUDGET_MS);
	uint8_t failing[MAX_LISTED] = { 0 };   /* never offered to hold a cow */
	for (int i = 0; i < blk_count(); i++) {
		struct blk_dev *d = blk_get(i);
		if (d->parent)
			continue;
		struct blk_health h;
		int sev = health_read(d, budget, &h);
		if (i < MAX_LISTED)
			failing[i] = h.verdict == BLK_HEALTH_FAILING;
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
		} else if (h.verdict == BLK_HEALTH_FAILING)
			what = "no partition table, but failing: not one to hold a cow";
		else
			what = "no partition table: could hold a cow (check it is not needed)";
		kprintf("  %-8s %10s  %-24.24s  %s%s%s\n", d->name, size, d->model[0] ? d->model : "(no model)", what,
			cp ? cowpart : "", d->flags & BLK_F_DEV_RO ? " (write-protected)" : "");
		if (sev)
			console_mark((enum console_sev)sev);
		kprintf("  %-8s %10s  %s\n", "", "", h.words);
	}
	log_event(LOG_DEBUG, "first screen: the disks' health read in %llu ms",
		  (unsigned long long)((time_now_us() - t0) / 1000));
	/* A partition typed for a cow is the first choice for one, the boot stick's too. */
	for (int i = 0; i < blk_count(); i++) {
		struct blk_dev *d = blk_get(i);
		if (!(d->flags & BLK_F_COW_PART) || (d->flags & BLK_F_DEV_RO) || !src || d->parent == src ||
		    is_failing(failing, d->parent))
			continue;
		if (d->sectors * d->lsize >= src->sectors * src->lsize &&
		    (!cow || d->sectors * d->lsize < cow->sectors * cow->lsize))
			cow = d;
	}
	for (int i = 0; i < blk_count() && !(cow && (cow->flags & BLK_F_COW_PART)); i++) {
		struct blk_dev *d = blk_get(i);
		if (d->parent || d == src || (d->flags & (BLK_F_BOOT | BLK_F_DEV_RO)) || has_partitions(d) ||
		    i >= MAX_LISTED || failing[i])
			continue;
		if (src && d->sectors * d->lsize >= src->sectors * src->lsize &&
		    (!cow || d->sectors * d->lsize < cow->sectors * cow->lsize))
			cow = d;
	}
	if (src && cow)
		kprintf("To rescue %s into %s: cow format %s %s --yes, then cow open %s %s, then rescue ov0 and wait.\n",
			src->name, cow->name, cow->name, src->name, src->name, cow->name);
	else if (src)
		kprintf("No blank disk as large as %s was found to hold its cow: attach one, or see disks.\n",
			src->name);
	kprintf("Every figure of a disk: info <disk>. All commands: help. Type below and press Enter.\n");
}
