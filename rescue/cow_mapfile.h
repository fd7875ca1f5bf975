/* A cow's map as a GNU ddrescue mapfile (rescue/cow_mapfile.c): the join of the cow engine and
 * the mapfile writer, so that cow/ needs nothing of rescue/. */
#ifndef RESCUE_COW_MAPFILE_H
#define RESCUE_COW_MAPFILE_H

#include "../cow/cow.h"

/* Where a rescue is, for the mapfile's status line (ddrescue's current_pos, current_status and
 * current_pass, and its phase message). */
struct cow_progress { uint64_t pos; char status; unsigned pass; const char *message; };
/* The map as a GNU ddrescue mapfile, through `emit` (rescue/mapfile.h). Without `progress` the
 * status line is derived from the map: "Finished" once nothing is left to try. */
int cow_write_mapfile(const struct cow *c, const char *version, const char *command_line,
		      const char *start_time, const char *current_time, const struct cow_progress *progress,
		      int (*emit)(void *ctx, const char *text, size_t len), void *emit_ctx);

#endif
