/* For the NTFS host tools: a disk that is an image file or a cow (with or without its source),
 * its rescue states (the cow's map or a ddrescue mapfile), its NTFS volumes, range sets. */
#ifndef TOOLS_LIB_NTVOL_H
#define TOOLS_LIB_NTVOL_H
#include "lib_filedev.h"
#include "../fs/ntfs.h"
#include "../fs/parttab.h"
#include "../rescue/mapfile.h"

struct ntdisk {
	struct filedev dev, src;
	struct cow *cow;                /* NULL for an image */
	bool has_src;
	uint64_t size;
	uint32_t lsize;
	struct mapfile_block *states;   /* sorted, tiling [0, size); NULL: all finished */
	size_t nstates;
	bool strict;                    /* reads of non-finished ranges fail (no source to read) */
};

/* Opens path as a cow (src: its source, may be NULL) or else as an image, taking the rescue
 * states from the ddrescue mapfile when one is given (an image then reads only what it calls
 * finished, as the drive would). 0, or prints why on stderr (prefixed by tool) and returns a
 * negative code with nothing left open. */
int ntdisk_open(struct ntdisk *d, const char *tool, const char *path, const char *src, const char *mapfile);
void ntdisk_close(struct ntdisk *d);
/* The ntfs_read_fn for a struct ntdisk: any offset and length. */
int ntdisk_read(void *ctx, uint64_t off, uint32_t len, void *buf);
/* Bytes of [off, off+len) in each state: index by status character. */
void ntdisk_states(const struct ntdisk *d, uint64_t off, uint64_t len, uint64_t count[256]);
/* True when the path names a cow partition (so a second argument may be its source). */
bool ntdisk_is_cow(const char *path);

/* The NTFS volumes: partitions whose first sector is an NTFS boot sector, or the whole disk.
 * *t describes the table: its own byte ranges (t->area), what it refused (said on stderr). */
int ntdisk_volumes(struct ntdisk *d, const char *tool, struct part *parts, unsigned max, unsigned *n,
		   struct parttab *t);

/* A set of byte ranges: add, then normalize (sort and merge). */
struct rangeset { struct mapfile_block *r; size_t n, cap; };
int rangeset_add(struct rangeset *s, uint64_t off, uint64_t len);
void rangeset_normalize(struct rangeset *s);
/* Writes the set as a domain mapfile of a disk of size bytes ('+' in it, '?' elsewhere). */
int rangeset_write_domain(const struct rangeset *s, uint64_t size, const char *cmdline, FILE *out);
void rangeset_free(struct rangeset *s);
/* The ntfs_domain callback adding each range to the rangeset ctx (groups are not kept). */
int rangeset_add_domain(void *ctx, int group, uint64_t off, uint64_t len);

/* Messages from the reader go to stderr, prefixed by the tool's name. */
void ntdisk_say(void *ctx, const char *msg);
#endif
