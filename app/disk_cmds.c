/* Console commands over the block layer: disks, info, read, and the test-only testwrite. */
#include "../drivers/blk.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../lib/args.h"
#include "../lib/crc32.h"
#include "../kernel/mem.h"
#include "../kernel/shell.h"
#include "../kernel/task.h"
#include "../kernel/time.h"

static void flags_text(const struct blk_dev *d, char *out, size_t n)
{
	fmt_snprintf(out, n, "%s%s%s%s%s%s%s", d->flags & (BLK_F_RO | BLK_F_DEV_RO) ? "ro," : "",
		     d->flags & BLK_F_SOURCE ? "source," : "", d->flags & (BLK_F_COW | BLK_F_COW_PART) ? "cow," : "",
		     d->flags & BLK_F_GONE ? "gone," : "", d->flags & BLK_F_BOOT ? "boot," : "",
		     d->flags & BLK_F_TARGET ? "target," : "", d->flags & BLK_F_OVERLAY ? "overlay," : "");
	size_t len = strlen(out);
	if (len)
		out[len - 1] = '\0';
	else
		fmt_snprintf(out, n, "-");
}

static int cmd_disks(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return -E_USAGE;
	/* The name column as wide as the longest name (usb0-6.4.1p1), so every row lines up. */
	int w = 8;
	for (int i = 0; i < blk_count(); i++)
		if ((int)strlen(blk_get(i)->name) > w)
			w = (int)strlen(blk_get(i)->name);
	kprintf("%-*s %10s %9s  %-20s %-20s %-7s %s\n", w, "name", "size", "sector", "model", "serial",
		"driver", "flags");
	for (int i = 0; i < blk_count(); i++) {
		struct blk_dev *d = blk_get(i);
		char size[24], fl[48], sec[16];
		blk_format_size(size, sizeof(size), d->sectors * d->lsize);
		flags_text(d, fl, sizeof(fl));
		fmt_snprintf(sec, sizeof(sec), "%u/%u", d->lsize, d->psize);
		kprintf("%-*s %10s %9s  %-20s %-20s %-7s %s\n", w, d->name, size, sec, d->model,
			d->serial[0] ? d->serial : "-", d->transport, fl);
	}
	kprintf("%d disks\n", blk_count());
	return 0;
}
COMMAND(disks, "disks", "one line a disk: name, size, sectors, model, serial, driver, flags",
	NULL, cmd_disks);

static int cmd_info(int argc, char **argv)
{
	if (argc != 2)
		return -E_USAGE;
	struct blk_dev *d = blk_find(argv[1]);
	if (!d)
		return -E_NOENT;
	char size[24], fl[48];
	blk_format_size(size, sizeof(size), d->sectors * d->lsize);
	flags_text(d, fl, sizeof(fl));
	kprintf("%s: %s, %llu sectors of %u bytes (physical %u)\n", d->name, size,
		(unsigned long long)d->sectors, d->lsize, d->psize);
	kprintf("model '%s', serial '%s', transport %s, flags %s, instance %llu\n", d->model,
		d->serial, d->transport, fl, (unsigned long long)d->instance);
	if (d->flags & BLK_F_COW_PART)
		kprintf("partition type: cowboot cow (GPT 84024261-2707-4790-a2ef-be9e11429f11)\n");
	kprintf("limits: %u sectors per command, queue depth %u, timeout %s\n", d->max_sectors,
		d->queue_depth, d->timeout_ms ? "per device" : "io-timeout setting");
	if (d->flags & (BLK_F_DISCARD | BLK_F_ZEROES))
		kprintf("no-data commands:%s%s, %u sectors each\n", d->flags & BLK_F_ZEROES ? " write-zeroes" : "",
			d->flags & BLK_F_DISCARD ? " discard" : "",
			d->max_zero_sectors ? d->max_zero_sectors : d->max_sectors);
	const struct blk_counters *c = &d->ctr;
	kprintf("counters: reads %llu, writes %llu, flushes %llu, errors %llu, timeouts %llu, resets %llu\n",
		(unsigned long long)c->reads, (unsigned long long)c->writes,
		(unsigned long long)c->flushes, (unsigned long long)c->errors,
		(unsigned long long)c->timeouts, (unsigned long long)c->resets);
	kprintf("bytes read %llu, written %llu, latency avg %llu us, max %llu us\n",
		(unsigned long long)c->bytes_read, (unsigned long long)c->bytes_written,
		(unsigned long long)(c->completed ? c->lat_total_us / c->completed : 0),
		(unsigned long long)c->lat_max_us);
	if (d->ops && d->ops->info)
		d->ops->info(d);
	return 0;
}
COMMAND(info, "info <disk>", "identity, limits, counters and driver details of a disk", NULL, cmd_info);

static void report_io_error(struct blk_dev *d, int rc, uint64_t err_lba)
{
	if (err_lba != BLK_NO_LBA)
		kprintf("%s: %s at LBA %llu\n", d->name, err_str(rc), (unsigned long long)err_lba);
}

static int parse_disk_range(char **argv, struct blk_dev **dp, uint64_t *lba, uint64_t *count)
{
	struct blk_dev *d = blk_find(argv[1]);
	if (!d)
		return -E_NOENT;
	if (args_u64(argv[2], lba) < 0 || args_u64(argv[3], count) < 0 || *count == 0 ||
	    *count > (1ULL << 32) - 1)
		return -E_USAGE;
	if (*lba >= d->sectors || *count > d->sectors - *lba) {
		kprintf("%s: LBA %llu+%llu is beyond the end of the device (%llu sectors)\n", d->name,
			(unsigned long long)*lba, (unsigned long long)*count, (unsigned long long)d->sectors);
		return cmd_said(-E_RANGE);
	}
	*dp = d;
	return 0;
}

static int cmd_read(int argc, char **argv)
{
	char *args[4] = { argv[0], argc > 1 ? argv[1] : NULL, argc > 2 ? argv[2] : NULL, "1" };
	if (argc < 3 || argc > 4)
		return -E_USAGE;
	if (argc == 4)
		args[3] = argv[3];
	struct blk_dev *d;
	uint64_t lba, count;
	int rc = parse_disk_range(args, &d, &lba, &count);
	if (rc < 0)
		return rc;
	if (count > 256) {
		kprintf("read dumps at most 256 sectors (use sum for more)\n");
		return cmd_said(-E_RANGE);
	}
	size_t bytes = (size_t)count * d->lsize;
	uint8_t *buf = kmalloc(bytes);
	if (!buf)
		return -E_NOMEM;
	uint64_t err_lba = BLK_NO_LBA;
	rc = blk_read(d, lba, (uint32_t)count, buf, &err_lba);
	if (rc < 0) {
		report_io_error(d, rc, err_lba);
		goto out;
	}
	for (size_t off = 0; off < bytes; off += 16) {
		if (console_interrupted()) {
			rc = -E_INTR;
			goto out;
		}
		char line[96];
		int n = fmt_snprintf(line, sizeof(line), "%08llx:", (unsigned long long)(lba * d->lsize + off));
		for (int i = 0; i < 16; i++)
			n += fmt_snprintf(line + n, sizeof(line) - (size_t)n, "%s%02x", i == 8 ? "  " : " ", buf[off + i]);
		n += fmt_snprintf(line + n, sizeof(line) - (size_t)n, "  |");
		for (int i = 0; i < 16; i++)
			line[n++] = buf[off + i] >= 0x20 && buf[off + i] < 0x7f ? (char)buf[off + i] : '.';
		line[n++] = '|';
		line[n] = '\0';
		kprintf("%s\n", line);
	}
out:
	kfree(buf);
	return rc;
}
COMMAND(read, "read <disk> <lba> [count]", "hexdump of sectors (byte offsets on the left)", NULL, cmd_read);

/* Test only: the appliance never writes a disk on its own; this proves writes, flushes and the
 * read-only guard from the console. */
static int cmd_testwrite(int argc, char **argv)
{
	uint64_t byte, lba, count;
	if (argc != 5 || args_u64(argv[4], &byte) < 0 || byte > 255)
		return -E_USAGE;
	struct blk_dev *d;
	int rc = parse_disk_range(argv, &d, &lba, &count);
	if (rc < 0)
		return rc;
	size_t bytes = (size_t)count * d->lsize;
	uint8_t *buf = kmalloc(bytes);
	if (!buf)
		return -E_NOMEM;
	memset(buf, (int)byte, bytes);
	uint64_t err_lba = BLK_NO_LBA;
	rc = blk_write(d, lba, (uint32_t)count, buf, &err_lba);
	if (rc == 0)
		rc = blk_flush(d);
	if (rc < 0)
		report_io_error(d, rc, err_lba);
	else
		kprintf("wrote and flushed %llu sectors at LBA %llu\n", (unsigned long long)count,
			(unsigned long long)lba);
	kfree(buf);
	return rc;
}
COMMAND(testwrite, "testwrite <disk> <lba> <count> <byte>", "test only: fill sectors with a byte, then flush",
	"Exists for the test suite: writes through the block layer (refused on read-only disks).",
	cmd_testwrite);

static int cmd_protect(int argc, char **argv)
{
	if (argc != 2)
		return -E_USAGE;
	struct blk_dev *d = blk_find(argv[1]);
	if (!d)
		return -E_NOENT;
	blk_protect_tree(d, BLK_F_RO, true);
	kprintf("%s (and its partitions or disk) read-only until reboot\n", d->name);
	return 0;
}
COMMAND(protect, "protect <disk>", "make a disk read-only in the block layer until reboot",
	"Writes and flushes to the disk and all its partitions are then refused before any driver\n"
	"  sees them (as for a source disk).",
	cmd_protect);

static int cmd_sum(int argc, char **argv)
{
	if (argc != 4)
		return -E_USAGE;
	struct blk_dev *d;
	uint64_t lba, count;
	int rc = parse_disk_range(argv, &d, &lba, &count);
	if (rc < 0)
		return rc;
	uint32_t chunk = 2048;
	uint8_t *buf = kmalloc((size_t)chunk * d->lsize);
	if (!buf)
		return -E_NOMEM;
	uint32_t crc = 0;
	uint64_t t0 = time_now_us();
	for (uint64_t done = 0; done < count && rc == 0;) {
		uint32_t n = count - done < chunk ? (uint32_t)(count - done) : chunk;
		uint64_t err_lba = BLK_NO_LBA;
		rc = blk_read(d, lba + done, n, buf, &err_lba);
		if (rc < 0)
			report_io_error(d, rc, err_lba);
		else
			crc = crc32_ieee(crc, buf, (size_t)n * d->lsize);
		done += n;
	}
	if (rc == 0)
		kprintf("crc32 %08x over %llu sectors from LBA %llu (%llu ms)\n", crc,
			(unsigned long long)count, (unsigned long long)lba,
			(unsigned long long)((time_now_us() - t0) / 1000));
	kfree(buf);
	return rc;
}
COMMAND(sum, "sum <disk> <lba> <count>", "CRC-32 of sectors (zlib's crc32), to check reads",
	NULL, cmd_sum);

/* Sequential read throughput with several requests in flight, as a rescue's copy pass reads. */
#define BENCH_DEPTH 8
#define BENCH_BYTES (1u << 20)

static int cmd_bench(int argc, char **argv)
{
	uint64_t mib = 256;
	if (argc < 2 || argc > 3 || (argc == 3 && (args_u64(argv[2], &mib) < 0 || mib == 0)))
		return -E_USAGE;
	struct blk_dev *d = blk_find(argv[1]);
	if (!d)
		return -E_NOENT;
	uint32_t per = BENCH_BYTES / d->lsize < d->max_sectors ? BENCH_BYTES / d->lsize : d->max_sectors;
	uint64_t total = mib * (1ULL << 20) / d->lsize;
	if (total > d->sectors)
		total = d->sectors;
	uint32_t depth = d->queue_depth < BENCH_DEPTH ? d->queue_depth : BENCH_DEPTH;
	static struct blk_req reqs[BENCH_DEPTH];
	uint8_t *bufs = kmalloc((size_t)depth * per * d->lsize);
	if (!bufs)
		return -E_NOMEM;
	uint64_t next = 0, done = 0, t0 = time_now_us();
	int rc = 0, busy = 0;
	for (uint32_t i = 0; i < depth; i++)
		reqs[i].complete = true;
	while ((done < total || busy) && rc == 0) {
		for (uint32_t i = 0; i < depth; i++) {
			struct blk_req *r = &reqs[i];
			if (!r->complete)
				continue;
			if (r->dev) {   /* reap */
				busy--;
				if (r->status < 0) {
					report_io_error(d, r->status, r->err_lba);
					rc = r->status;
				} else {
					done += r->count;
				}
				r->dev = NULL;
			}
			if (rc == 0 && next < total) {
				uint32_t n = total - next < per ? (uint32_t)(total - next) : per;
				*r = (struct blk_req){ .op = BLK_READ, .lba = next, .count = n,
						       .buf = bufs + (size_t)i * per * d->lsize };
				next += n;
				busy++;
				blk_submit(d, r);
			}
		}
		if (console_interrupted())
			rc = -E_INTR;
		task_yield();
	}
	while (busy) {   /* after an error or Ctrl-C, let what is in flight finish */
		busy = 0;
		for (uint32_t i = 0; i < depth; i++)
			busy += reqs[i].dev && !reqs[i].complete;
		task_yield();
	}
	uint64_t us = time_now_us() - t0;
	if (rc == 0) {
		uint64_t bytes = done * d->lsize;
		uint64_t kib_s = us ? bytes * 1000000 / 1024 / us : 0;
		kprintf("read %llu MiB in %llu ms: %llu.%02llu MiB/s (queue depth %u, %u KiB per request)\n",
			(unsigned long long)(bytes >> 20), (unsigned long long)(us / 1000),
			(unsigned long long)(kib_s / 1024), (unsigned long long)(kib_s % 1024 * 100 / 1024),
			depth, per * d->lsize / 1024);
	}
	kfree(bufs);
	return rc;
}
COMMAND(bench, "bench <disk> [MiB]", "sequential read throughput (default 256 MiB)",
	"Reads from LBA 0 with 8 requests of 1 MiB in flight (or the device's limits).", cmd_bench);
