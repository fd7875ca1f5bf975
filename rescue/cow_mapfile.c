/* A cow's map as a GNU ddrescue mapfile: the map's extents become the mapfile's blocks, its
 * totals the status line when no rescue says where it is. */
#include "cow_mapfile.h"
#include "mapfile.h"

/* The walk goes by sector, not by extent pointer: emit may yield (the appliance's console lets
 * the jobs run while a long map prints), and a job may change the map between two lines. */
struct map_iter { const struct cow_map *m; uint64_t next; uint32_t lsize; };

static int next_block(void *ctx, struct mapfile_block *b)
{
	struct map_iter *it = ctx;
	if (it->next >= it->m->sectors)
		return 0;
	const struct cow_extent *e = cow_map_at(it->m, it->next);
	uint64_t end = e->start + e->count;
	*b = (struct mapfile_block){ it->next * it->lsize, (end - it->next) * it->lsize, (char)e->state };
	it->next = end;
	return 1;
}

int cow_write_mapfile(const struct cow *c, const char *version, const char *command_line,
		      const char *start_time, const char *current_time, const struct cow_progress *progress,
		      int (*emit)(void *ctx, const char *text, size_t len), void *emit_ctx)
{
	const struct cow_map *m = cow_get_map(c);
	struct cow_geometry g;
	cow_get_geometry(c, &g);
	struct cow_totals t;
	cow_map_totals(m, &t);
	int done = t.sectors[0] + t.sectors[1] + t.sectors[2] == 0;
	struct mapfile_header h = { version, command_line, start_time, current_time,
				    done ? "Finished" : "Copying non-tried blocks... Pass 1 (forwards)",
				    0, done ? COW_FINISHED : COW_NONTRIED, 1 };
	if (progress) {
		h.phase = progress->message;
		h.current_pos = progress->pos;
		h.current_status = progress->status;
		h.current_pass = progress->pass;
	}
	struct map_iter it = { m, 0, g.src_lsize };
	return mapfile_write(&h, next_block, &it, emit, emit_ctx);
}
