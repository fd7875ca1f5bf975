/* libFuzzer target: the partition-table parser on a hostile disk. The first byte picks the
 * sector size (even: 512, odd: 4096), the second how many zero sectors lie in the middle; the
 * rest is split in two halves, the disk's head and its tail (where the backup GPT lives).
 * Seeds: tests/qemu/hostile_disks.py --seeds. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../../lib/errors.h"
#include "../../fs/parttab.h"

struct disk {
	const uint8_t *head, *tail;
	size_t half;
	uint64_t size;
};

/* The middle reads as zeros; past the disk, an error (as a block device would give). */
static int disk_read(void *ctx, uint64_t off, uint32_t len, void *buf)
{
	const struct disk *d = ctx;
	if (off > d->size || len > d->size - off)
		return -E_RANGE;
	uint8_t *b = buf;
	uint64_t tail_at = d->size - d->half;
	for (uint32_t i = 0; i < len; i++) {
		uint64_t at = off + i;
		b[i] = at < d->half ? d->head[at] : at >= tail_at ? d->tail[at - tail_at] : 0;
	}
	return 0;
}

static void say(void *ctx, const char *msg)
{
	(*(unsigned *)ctx) += msg[0] != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint32_t ss = data[0] & 1 ? 4096 : 512;
	size_t half = (size - 2) / 2;
	struct disk d = { data + 2, data + 2 + half, half, 2 * (uint64_t)half + (uint64_t)data[1] * ss };
	struct part parts[16];
	unsigned said = 0;
	struct parttab t = { .say = say, .say_ctx = &said };
	int rc = parttab_scan(disk_read, &d, d.size, ss, parts, 16, &t);
	/* What the parser promises: partitions inside the disk, not overlapping, areas on it. */
	if (rc == 0 && t.scheme != 'r') {
		for (unsigned i = 0; i < t.n; i++) {
			if (parts[i].start >= d.size || parts[i].size > d.size - parts[i].start || !parts[i].size)
				__builtin_trap();
			for (unsigned j = 0; j < i; j++)
				if (parts[i].start < parts[j].start + parts[j].size &&
				    parts[j].start < parts[i].start + parts[i].size)
					__builtin_trap();
		}
	}
	for (unsigned i = 0; i < t.nareas; i++)
		if (t.area[i].start >= d.size || t.area[i].size > d.size - t.area[i].start)
			__builtin_trap();
	if (t.n > 16 || t.n > t.found || said > PARTTAB_MAX_SAID + 3)
		__builtin_trap();
	return 0;
}
