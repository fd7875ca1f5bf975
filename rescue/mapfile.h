/* GNU ddrescue mapfiles: the writer (byte-compatible with ddrescue 1.27, never '%') and the
 * reader (ddrescue's rules; mapfiles must be contiguous, domain files may be in any order). */
#ifndef COW_MAPFILE_H
#define COW_MAPFILE_H

#include "../lib/port.h"

/* Block states: '?' non-tried, '*' non-trimmed, '/' non-scraped, '-' bad, '+' finished. */
struct mapfile_block {
	uint64_t pos, size;
	char status;
};

struct mapfile_header {
	const char *version;        /* "cowboot <version>" goes after "Created by " */
	const char *command_line;
	const char *start_time;     /* "YYYY-MM-DD HH:MM:SS" */
	const char *current_time;
	const char *phase;          /* e.g. "Copying non-tried blocks... Pass 1 (forwards)" */
	uint64_t current_pos;
	char current_status;        /* '?' copying, '*' trimming, '/' scraping, '-' retrying, '+' finished */
	unsigned current_pass;
};

/* Supplies the next block in position order: 1 when *b is set, 0 at the end, or an error. */
typedef int (*mapfile_next_fn)(void *ctx, struct mapfile_block *b);
/* Receives output text; returns 0 or an error, which stops the writer. */
typedef int (*mapfile_emit_fn)(void *ctx, const char *text, size_t len);

/* Writes a whole mapfile. Blocks must start at 0 and be contiguous; neighbours with the same
 * status are merged. -E_INVAL for a gap, an overlap, an empty block or a bad status. */
int mapfile_write(const struct mapfile_header *h, mapfile_next_fn next, void *next_ctx,
		  mapfile_emit_fn emit, void *emit_ctx);

enum mapfile_kind { MAPFILE_MAP, MAPFILE_DOMAIN };

struct mapfile_status {
	bool present;               /* the optional status line was there */
	uint64_t current_pos;
	char current_status;
	unsigned current_pass;
};

/* Receives each block as read; returns 0 to go on or an error to stop. */
typedef int (*mapfile_block_fn)(void *ctx, const struct mapfile_block *b);

/* Parses `len` bytes of mapfile text. On malformed input returns -E_SYNTAX with
 * "line N: <reason>" in err. Needs no memory beyond the caller's callback. */
int mapfile_read(const char *text, size_t len, enum mapfile_kind kind, struct mapfile_status *st,
		 mapfile_block_fn fn, void *ctx, char *err, size_t errlen);

#endif
