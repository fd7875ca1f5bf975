/* Overlays ov0..ov7 (app/cow_cmds.c): a source disk and its open cow, shared by the cow
 * commands and the rescue jobs (app/rescue_cmds.c). */
#ifndef KERNEL_OVERLAY_H
#define KERNEL_OVERLAY_H

#include "../cow/cow.h"
#include "../rescue/cow_mapfile.h"
#include "../rescue/rescue.h"
#include "../drivers/blk.h"

#define MAX_OV 8

/* A block-layer disk as a cow_bdev; reads use the adapter's deadline (0: the disk's own). */
struct bdev_adapter {
	struct cow_bdev bdev;
	struct blk_dev *blk;
	uint32_t timeout_ms;
};

struct job;

struct overlay {
	struct cow *cow;
	struct bdev_adapter src, dst;
	char start_time[24];
	struct rescue_domain next_domain; /* `domain`: the next rescue's (empty: the whole source) */
	struct job *job;                  /* the overlay's rescue or clone job, if any */
};

extern const struct cow_env kernel_env;
void bdev_adapt(struct bdev_adapter *a, struct blk_dev *d);
/* "ov0".."ov7" of an open overlay; prints "no overlay" and returns NULL otherwise. */
struct overlay *overlay_find(const char *name);
int overlay_index(const struct overlay *o);
/* Overlay i (0..MAX_OV-1) when it is open, else NULL. */
struct overlay *overlay_get(int i);
/* Recomputes the source flags of every disk from the open overlays. */
void overlay_refresh_source_flags(void);
/* "YYYY-MM-DD HH:MM:SS" of the wall clock. */
void wall_text(char *out, size_t n);

/* app/rescue_cmds.c: stops every job (progress committed) before shutdown or close. */
void jobs_stop_all(void);
/* Takes the overlay for a command that reads through it: -E_BUSY while its job is running
 * (the job holds it for the whole run), else 0; overlay_unlock gives it back. */
int overlay_try_lock(const struct overlay *o);
void overlay_unlock(const struct overlay *o);

/* app/ntfs_cmds.c: the NTFS volumes of the overlay's source as a rescue domain (d is
 * initialised here) in priority groups: partition tables and boot sectors, $MFT and $MFTMirr,
 * directory indexes, file data, then the other used clusters; with a glob, only the matching
 * files' data after the metadata needed to find them. Reads through the overlay, rescuing what
 * it touches. why: a sentence on failure. */
int ntfs_domain_build(struct overlay *o, const char *glob, struct rescue_domain *d, char *why, size_t whylen);
/* The overlay's latest job for its mapfile: fills p (message in msg), returns its command line,
 * or NULL when the overlay has had no job since it was opened. */
const char *job_progress(const struct overlay *o, struct cow_progress *p, char *msg, size_t n);
/* The overlay is closed: its finished job is no longer shown. */
void job_forget(const struct overlay *o);
/* Commits an overlay: through its job when one is running (between two reads), else here. */
int overlay_commit(struct overlay *o);

/* app/ov_disk.c: the overlay as the block-layer disk of its own name (ov0..ov7), from
 * `cow open` (attach) to `cow close` (detach: -E_BUSY while another overlay uses that disk). */
int ov_disk_attach(struct overlay *o);
int ov_disk_detach(struct overlay *o);

#endif
