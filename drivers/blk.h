/* The block layer: a registry of disks with stable names, asynchronous requests with
 * deadlines, the read-only guard that protects source disks, and synchronous helpers. */
#ifndef DRIVERS_BLK_H
#define DRIVERS_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include "../lib/errors.h"

/* BLK_DISCARD: the sectors' contents no longer matter (the device may deallocate them; they
 * read back as anything). BLK_WRITE_ZEROES: they read back as zeros, written by the device
 * with no data sent and left allocated. Both carry no buffer and are refused (-E_UNSUPP)
 * unless the device offers them (BLK_F_DISCARD, BLK_F_ZEROES). */
enum blk_op { BLK_READ, BLK_WRITE, BLK_FLUSH, BLK_DISCARD, BLK_WRITE_ZEROES };
#define BLK_REQ_FUA  0x01u     /* write through to media; refused (-E_UNSUPP) unless BLK_F_FUA:
                                  callers then write and flush */

#define BLK_NO_LBA   UINT64_MAX

struct blk_dev;
struct blk_health;

struct blk_req {
	/* Filled in by the submitter. */
	uint8_t op;
	uint8_t flags;
	uint64_t lba;             /* logical sectors of the device */
	uint32_t count;           /* sectors; any number: the layer splits to the device's limits */
	void *buf;                /* count * lsize bytes; any kernel memory is DMA-able; NULL for
				     BLK_DISCARD and BLK_WRITE_ZEROES */
	uint32_t timeout_ms;      /* 0: the device's default */
	void (*done)(struct blk_req *r);   /* called once, from a poller, when complete; may be NULL */
	void *priv;

	/* Filled in by the layer. */
	int status;               /* 0, -E_MEDIUM, -E_TIMEOUT, -E_GONE, -E_UNSUPP, -E_RDONLY, -E_RANGE, -E_IO */
	uint64_t err_lba;         /* first failing LBA when the device said so, else BLK_NO_LBA */
	bool complete;
	struct blk_dev *dev;
	uint64_t instance;        /* device instance the request was issued to */
	uint64_t deadline_us;
	uint64_t submit_us;

	/* Private to the layer and the driver. */
	struct blk_req *next;
	struct blk_req *parent;   /* split children point at the request they came from */
	uint32_t pending;         /* children not yet complete */
	uint32_t drv_tag;         /* the driver's slot/command id */
};

struct blk_driver_ops {
	/* Starts a request already within the device's limits (max_sectors, alignment). Returns 0
	 * when the device took it, -E_BUSY when its queue is full (the layer retries later), or
	 * another error to complete the request at once. Must not block. */
	int (*start)(struct blk_dev *d, struct blk_req *r);
	/* Reaps finished commands and calls blk_complete() for each. Called from the pollers. */
	void (*poll)(struct blk_dev *d);
	/* A request is past its deadline. The driver abandons every in-flight command, climbs its
	 * reset ladder until IDENTIFY answers with the same identity, and returns 0, or -E_GONE
	 * when the ladder fails. The layer then fails or re-issues what was in flight; completions
	 * the device may still post for abandoned commands must be dropped by the driver.
	 * overdue is NULL when the layer re-probes a gone device (blk_reprobe). */
	int (*recover)(struct blk_dev *d, struct blk_req *overdue);
	/* Prints the driver's identify/health details for `info` (may be NULL). */
	void (*info)(struct blk_dev *d);
	/* The device's health (SMART, the NVMe health log), asked within timeout_ms (a hung disk
	 * must not hold up the first screen), for the first screen, `info` and the report (may be
	 * NULL: none offered). 0 with h filled, or -E_BUSY when it cannot be asked now, -E_TIMEOUT,
	 * -E_GONE, -E_IO. */
	int (*health)(struct blk_dev *d, struct blk_health *h, uint32_t timeout_ms);
};

enum blk_verdict { BLK_HEALTH_PASSED, BLK_HEALTH_WARNING, BLK_HEALTH_FAILING, BLK_HEALTH_UNKNOWN };
/* lib/ata_id.c's ata_smart_words returns 0..3 in this order: SATA and USB drivers cast it. */
_Static_assert(BLK_HEALTH_PASSED == 0 && BLK_HEALTH_WARNING == 1 && BLK_HEALTH_FAILING == 2 &&
	       BLK_HEALTH_UNKNOWN == 3, "the verdicts in ata_smart_words' order");
struct blk_health {
	enum blk_verdict verdict;
	char words[120];    /* for a person: "SMART: passed", "SMART: FAILING (...), 12 reallocated sectors" */
	char detail[200];   /* every figure on one line, as the report prints it */
};

#define BLK_F_RO      0x01u   /* refuses writes and flushes before any driver sees them */
#define BLK_F_SOURCE  0x02u   /* bound as the source of an overlay (implies BLK_F_RO) */
#define BLK_F_COW     0x04u   /* holds an open cow */
#define BLK_F_GONE    0x08u   /* vanished; requests fail with -E_GONE until it returns */
#define BLK_F_BOOT    0x10u   /* the disk cowboot was loaded from */
#define BLK_F_DEV_RO  0x20u   /* the device itself reports write protection */
#define BLK_F_FUA     0x40u   /* device supports FUA writes */
#define BLK_F_FLUSH   0x80u   /* device has a volatile cache that needs flushing */
#define BLK_F_TARGET  0x100u  /* a clone job writes it: wipe and other clones keep off */
#define BLK_F_OVERLAY 0x200u  /* an overlay's disk (app/ov_disk.c): its requests end when its
                                 source's and cow's do, so it has no deadline of its own */
#define BLK_F_COW_PART 0x400u /* a GPT partition of type "cowboot cow" (drivers/part.c) */
#define BLK_F_DISCARD 0x800u  /* device takes BLK_DISCARD */
#define BLK_F_ZEROES  0x1000u /* device takes BLK_WRITE_ZEROES */

struct blk_counters {
	uint64_t reads, writes, flushes, errors, timeouts, resets;
	uint64_t bytes_read, bytes_written;
	uint64_t lat_total_us, lat_max_us, completed;
};

struct blk_dev {
	char name[16];            /* vd0, sata0, nvme0n1, vd0p2 */
	const char *transport;    /* "virtio", "ahci", "nvme", "part" */
	uint64_t sectors;         /* capacity in logical sectors */
	uint32_t lsize, psize;    /* logical and physical sector sizes in bytes */
	char model[48], serial[32], firmware[16];
	uint8_t wwn[16];          /* WWN / EUI-64 / NGUID, wwn_len bytes valid */
	uint8_t wwn_len;
	uint32_t flags;
	uint64_t instance;        /* changes whenever the device is reset or re-attached */
	uint32_t max_sectors;     /* largest single command */
	uint32_t max_zero_sectors; /* largest BLK_DISCARD or BLK_WRITE_ZEROES (0: max_sectors) */
	uint32_t queue_depth;     /* commands the driver takes at once */
	uint32_t timeout_ms;      /* default deadline */
	struct blk_counters ctr;

	const struct blk_driver_ops *ops;
	void *drv;                /* driver state */

	struct blk_dev *parent;   /* partitions: the whole disk, start_lba within it */
	uint64_t start_lba;

	/* Layer state. */
	struct blk_req *waiting;  /* not yet started (queue full) */
	struct blk_req *inflight; /* started, not complete */
	uint32_t ninflight;
};

/* Registry. Names are given by drivers (in discovery order; USB by port path) and never held
 * by two disks. */
int blk_register(struct blk_dev *d);
/* The whole drive a disk or partition lies on. */
static inline struct blk_dev *blk_drive(struct blk_dev *d) { return d->parent ? d->parent : d; }
/* a and b share bytes: one disk, or a disk and a partition of it (partitions of one disk never
 * overlap: the table parser refuses those that would). The one overlap test of the commands. */
static inline bool blk_overlaps(const struct blk_dev *a, const struct blk_dev *b)
{
	return a == b || a == b->parent || a->parent == b;
}
int blk_count(void);
struct blk_dev *blk_get(int i);
/* "vd0", "vd0p2", "serial=XYZ", "boot"; NULL and a message on the console when not found
 * (said for the command that asked: it returns -E_NOENT and the shell adds nothing). */
struct blk_dev *blk_find(const char *spec);

/* Asynchronous interface. */
int blk_submit(struct blk_dev *d, struct blk_req *r);
/* For drivers: a started command finished. Ignores requests of an older instance. */
void blk_complete(struct blk_dev *d, struct blk_req *r, int status, uint64_t err_lba);
/* For drivers: the device vanished (link down, ladder exhausted) or came back with the same
 * identity (instance changes, flags cleared). */
void blk_set_gone(struct blk_dev *d);
void blk_set_returned(struct blk_dev *d);
/* Asks the driver of a gone disk whether it answers again with the same identity (its recover
 * op with no request); 0 and the disk is back, else still gone. */
int blk_reprobe(struct blk_dev *d);

/* Sets (on) or clears a protection flag (BLK_F_RO, BLK_F_SOURCE) on a disk and all its
 * partitions, or on a partition's disk and siblings: writing through another name must be
 * refused too. */
void blk_protect_tree(struct blk_dev *d, uint32_t flag, bool on);
/* Registers the GPT (or MBR) partitions of every disk as <disk>p<N> (drivers/part.c). */
void part_scan_all(void);
/* The same for one disk found after boot (a hot-plugged USB disk); from a task, not a poller. */
void part_scan_disk(struct blk_dev *d);

/* Synchronous helpers: submit and wait (yielding to other tasks). Return 0 or the status;
 * *err_lba (may be NULL) receives the failing LBA when known. */
int blk_read(struct blk_dev *d, uint64_t lba, uint32_t count, void *buf, uint64_t *err_lba);
/* The same with a deadline of its own (ms; 0: the device's default). */
int blk_read_timeout(struct blk_dev *d, uint64_t lba, uint32_t count, void *buf, uint64_t *err_lba,
		     uint32_t timeout_ms);
int blk_write(struct blk_dev *d, uint64_t lba, uint32_t count, const void *buf, uint64_t *err_lba);
int blk_flush(struct blk_dev *d);
/* The no-data writes, with the guard and deadline of a write: -E_UNSUPP when the disk does not
 * offer them (callers then write zeros themselves, or skip the discard). */
int blk_write_zeroes(struct blk_dev *d, uint64_t lba, uint32_t count, uint64_t *err_lba);
int blk_discard(struct blk_dev *d, uint64_t lba, uint32_t count);

/* "1.0 TiB" style size for listings. */
void blk_format_size(char *out, int outlen, uint64_t bytes);

#endif
