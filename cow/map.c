/* The rescue map: extents tiling the source in sector order, packed 8 bytes each into chunks
 * that are 4 KiB pages (cow/mappage.h), beside a sorted array of the chunks' first sectors. A
 * lookup is two binary searches; an update moves at most a chunk's tail. Chunks split when full
 * and are merged or evened out below half full, so memory stays under 16 bytes an extent (10 M
 * extents in 160 MiB); a Fenwick tree of chunk sizes gives extent indexes. Chunks are grouped
 * under index pages; every change marks its chunk (changed, or moved when its range changed)
 * and a change of members its group, so that a commit of the cow writes only what it must. */
#include "cow.h"
#include "../lib/errors.h"
#include "../lib/crc32c.h"
#include "mappage.h"

#define LOAD_FILL (CHUNK_MAX * 3 / 4)   /* a loaded map leaves room to grow in every chunk */
#define NVIEW 8u

static const char STATE_CHARS[5] = { COW_NONTRIED, COW_NONTRIMMED, COW_NONSCRAPED, COW_BAD, COW_FINISHED };

/* A position in the map: extent i of chunk k; k == nchunks past the end. */
struct pos { uint64_t k; uint32_t i; };

int cow_state_index(uint8_t s)
{
	switch (s) {
	case COW_NONTRIED: return 0;
	case COW_NONTRIMMED: return 1;
	case COW_NONSCRAPED: return 2;
	case COW_BAD: return 3;
	case COW_FINISHED: return 4;
	}
	return -1;
}

uint8_t map_state_char(unsigned idx)
{
	return idx < 5 ? (uint8_t)STATE_CHARS[idx] : 0;
}

uint32_t map_page_crc(const void *page)
{
	return crc32c(0, (const uint8_t *)page + 8, MAP_PAGE - 8);
}

static uint64_t ent_start(const struct cow_map_chunk *c, uint32_t i)
{
	return ENT_START(c->e[i]);
}

/* Where chunk k's last extent ends. */
static uint64_t chunk_end(const struct cow_map *m, uint64_t k)
{
	return k + 1 < m->nchunks ? m->first[k + 1] : m->sectors;
}

/* Its extents changed: the next commit writes it, or logs the change. A clean chunk's gen is
 * the commit that wrote its page; a changed one's, the first commit whose log holds a change
 * to it (what the log must keep). */
static void touch(const struct cow_map *m, struct cow_map_chunk *c)
{
	if (!(c->h.gen & GEN_DIRTY))
		c->h.gen = GEN_DIRTY | m->next_commit;
}

/* Its range changed: the next commit must write it (cow/mappage.h). */
static void moved(const struct cow_map *m, struct cow_map_chunk *c)
{
	touch(m, c);
	c->h.gen |= GEN_MOVED;
}

/* ---- the Fenwick tree of chunk sizes (1-based: fen[k + 1] covers chunk k) ---------------- */

static void fen_add(struct cow_map *m, uint64_t k, int64_t d)
{
	for (uint64_t i = k + 1; i <= m->nchunks; i += i & (~i + 1))
		m->fen[i] += (uint64_t)d;
}

static uint64_t fen_prefix(const struct cow_map *m, uint64_t k)
{
	uint64_t s = 0;
	for (uint64_t i = k; i; i &= i - 1)
		s += m->fen[i];
	return s;
}

static void fen_rebuild(struct cow_map *m)
{
	for (uint64_t k = 0; k < m->nchunks; k++) {
		m->size[k] = m->chunk[k]->h.n;
		m->first[k] = ent_start(m->chunk[k], 0);
		m->fen[k + 1] = m->size[k];
	}
	for (uint64_t i = 1; i <= m->nchunks; i++) {
		uint64_t j = i + (i & (~i + 1));
		if (j <= m->nchunks)
			m->fen[j] += m->fen[i];
	}
}

/* ---- groups (index pages) ------------------------------------------------------------------ */

static uint64_t grp_count(const struct cow_map *m, uint64_t g)
{
	const struct cow_map_index *x = m->idx;
	return (g + 1 < x->n ? x->first[g + 1] : m->nchunks) - x->first[g];
}

static uint64_t grp_of(const struct cow_map *m, uint64_t k)
{
	return map_floor(m->idx->first, m->idx->n, k);
}

/* A page no longer referenced once the next commit is durable: its slot is handed to the cow.
 * Without memory the slot is only lost until the cow is opened again (never reused early). */
static void free_slot(struct cow_map *m, uint32_t slot)
{
	struct cow_map_index *x = m->idx;
	if (slot == SLOT_NONE)
		return;
	if (x->nfreed == x->freedcap) {
		uint64_t cap = x->freedcap ? x->freedcap * 2 : 256;
		uint32_t *t = m->env->alloc(cap * sizeof(*t));
		if (!t)
			return;
		if (x->nfreed)
			memcpy(t, x->freed, x->nfreed * sizeof(*t));
		if (x->freed)
			m->env->free(x->freed);
		x->freed = t;
		x->freedcap = cap;
	}
	x->freed[x->nfreed++] = slot;
}

static void grp_insert(struct cow_map *m, uint64_t g, uint64_t first)
{
	struct cow_map_index *x = m->idx;
	uint64_t tail = x->n - g;
	memmove(&x->first[g + 1], &x->first[g], tail * sizeof(*x->first));
	memmove(&x->slot[g + 1], &x->slot[g], tail * sizeof(*x->slot));
	memmove(&x->crc[g + 1], &x->crc[g], tail * sizeof(*x->crc));
	memmove(&x->dirty[g + 1], &x->dirty[g], tail * sizeof(*x->dirty));
	x->first[g] = first;
	x->slot[g] = SLOT_NONE;
	x->crc[g] = 0;
	x->dirty[g] = 1;
	x->n++;
}

static void grp_remove(struct cow_map *m, uint64_t g)
{
	struct cow_map_index *x = m->idx;
	free_slot(m, x->slot[g]);
	uint64_t tail = x->n - g - 1;
	memmove(&x->first[g], &x->first[g + 1], tail * sizeof(*x->first));
	memmove(&x->slot[g], &x->slot[g + 1], tail * sizeof(*x->slot));
	memmove(&x->crc[g], &x->crc[g + 1], tail * sizeof(*x->crc));
	memmove(&x->dirty[g], &x->dirty[g + 1], tail * sizeof(*x->dirty));
	x->n--;
}

/* Groups below half full in [lo, hi] are merged with or evened out against their neighbour. */
static void grp_fix(struct cow_map *m, uint64_t lo, uint64_t hi)
{
	struct cow_map_index *x = m->idx;
	if (hi >= x->n)
		hi = x->n - 1;
	for (uint64_t g = lo; g < hi && g + 1 < x->n;) {
		uint64_t a = grp_count(m, g), b = grp_count(m, g + 1);
		if (a >= IDX_MIN && b >= IDX_MIN) {
			g++;
			continue;
		}
		x->dirty[g] = x->dirty[g + 1] = 1;
		if (a + b <= IDX_MAX) {
			grp_remove(m, g + 1);
			hi--;
			continue;   /* the merged group may still be small */
		}
		x->first[g + 1] = x->first[g] + (a + b) / 2;
		g++;
	}
}

/* Chunk k was inserted after chunk k - 1: it joins that chunk's group. */
static void grp_after_insert(struct cow_map *m, uint64_t k)
{
	struct cow_map_index *x = m->idx;
	uint64_t g = grp_of(m, k - 1);
	for (uint64_t h = g + 1; h < x->n; h++)
		x->first[h]++;
	x->dirty[g] = 1;
	uint64_t cnt = grp_count(m, g);
	if (cnt > IDX_MAX)
		grp_insert(m, g + 1, x->first[g] + cnt / 2);
}

/* ---- searching ---------------------------------------------------------------------------- */

/* The hint and the views are caches, not part of the map's value: updating them through a
 * const map is fine because no map is ever defined const. */
static void set_hint(const struct cow_map *m, uint64_t k)
{
	((struct cow_map *)m)->hint = k;
}

static uint64_t chunk_of(const struct cow_map *m, uint64_t sector)
{
	uint64_t h = m->hint;
	if (h < m->nchunks && m->first[h] <= sector && (h + 1 == m->nchunks || sector < m->first[h + 1]))
		return h;
	uint64_t k = map_floor(m->first, m->nchunks, sector);
	set_hint(m, k);
	return k;
}

static uint32_t index_in(const struct cow_map_chunk *c, uint64_t sector)
{
	uint32_t lo = 0, hi = c->h.n - 1;
	while (lo < hi) {
		uint32_t mid = (lo + hi + 1) / 2;
		if (ent_start(c, mid) <= sector)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static struct pos pos_of(const struct cow_map *m, uint64_t sector)
{
	uint64_t k = chunk_of(m, sector);
	return (struct pos){ k, index_in(m->chunk[k], sector) };
}

/* A decoded copy of extent p, from the ring of views (the same one if it is there already). */
static const struct cow_extent *view(const struct cow_map *cm, struct pos p)
{
	struct cow_map *m = (struct cow_map *)cm;
	uint64_t chg = m->idx->changes;
	for (uint32_t v = 0; v < NVIEW; v++)
		if (m->view_k[v] == p.k && m->view_i[v] == p.i && m->view_chg[v] == chg)
			return &m->view[v];
	uint32_t v = m->view_next++ % NVIEW;
	const struct cow_map_chunk *c = m->chunk[p.k];
	uint64_t e = c->e[p.i], s = ENT_START(e);
	uint64_t end = p.i + 1 < c->h.n ? ent_start(c, p.i + 1) : chunk_end(m, p.k);
	m->view[v] = (struct cow_extent){ s, end - s, map_state_char(e & 7), (uint8_t)((e >> 3) & 1) };
	m->view_k[v] = p.k;
	m->view_i[v] = p.i;
	m->view_chg[v] = chg;
	return &m->view[v];
}

uint64_t cow_map_lookup(const struct cow_map *m, uint64_t sector)
{
	struct pos p = pos_of(m, sector);
	return fen_prefix(m, p.k) + p.i;
}

const struct cow_extent *cow_map_at(const struct cow_map *m, uint64_t sector)
{
	return view(m, pos_of(m, sector));
}

const struct cow_extent *cow_map_get(const struct cow_map *m, uint64_t i)
{
	if (i >= m->n)
		return NULL;
	uint64_t k = 0, step = 1;
	while (step * 2 <= m->nchunks)
		step *= 2;
	for (; step; step /= 2) {
		if (k + step <= m->nchunks && m->fen[k + step] <= i) {
			k += step;
			i -= m->fen[k];
		}
	}
	return view(m, (struct pos){ k, (uint32_t)i });
}

const struct cow_extent *cow_map_next(const struct cow_map *m, const struct cow_extent *x)
{
	struct pos p = { 0, 0 };
	bool known = false;
	/* A view of the current map knows its position; anything else is found by its start. */
	for (uint32_t v = 0; v < NVIEW && !known; v++)
		if (x == &m->view[v] && m->view_chg[v] == m->idx->changes) {
			p = (struct pos){ m->view_k[v], m->view_i[v] };
			known = true;
		}
	if (!known)
		p = pos_of(m, x->start);
	if (p.i + 1 < m->chunk[p.k]->h.n)
		return view(m, (struct pos){ p.k, p.i + 1 });
	if (p.k + 1 >= m->nchunks)
		return NULL;
	set_hint(m, p.k + 1);
	return view(m, (struct pos){ p.k + 1, 0 });
}

/* ---- memory ------------------------------------------------------------------------------- */

static void free_arrays(const struct cow_env *env, struct cow_map *m)
{
	if (m->chunk)
		env->free(m->chunk);
	if (m->first)
		env->free(m->first);
	if (m->size)
		env->free(m->size);
	if (m->fen)
		env->free(m->fen);
	m->chunk = NULL;
	m->first = NULL;
	m->size = NULL;
	m->fen = NULL;
}

static void free_index(const struct cow_env *env, struct cow_map_index *x)
{
	if (!x)
		return;
	if (x->first)
		env->free(x->first);
	if (x->slot)
		env->free(x->slot);
	if (x->crc)
		env->free(x->crc);
	if (x->dirty)
		env->free(x->dirty);
	if (x->freed)
		env->free(x->freed);
	env->free(x);
}

static int grow_arrays(struct cow_map *m, uint64_t cap)
{
	struct cow_map t = { 0 };
	t.chunk = m->env->alloc(cap * sizeof(*t.chunk));
	t.first = m->env->alloc(cap * sizeof(*t.first));
	t.size = m->env->alloc(cap * sizeof(*t.size));
	t.fen = m->env->alloc((cap + 1) * sizeof(*t.fen));
	if (!t.chunk || !t.first || !t.size || !t.fen) {
		free_arrays(m->env, &t);
		return -E_NOMEM;
	}
	if (m->nchunks) {
		memcpy(t.chunk, m->chunk, m->nchunks * sizeof(*t.chunk));
		memcpy(t.first, m->first, m->nchunks * sizeof(*t.first));
		memcpy(t.size, m->size, m->nchunks * sizeof(*t.size));
		memcpy(t.fen, m->fen, (m->nchunks + 1) * sizeof(*t.fen));
	}
	free_arrays(m->env, m);
	m->chunk = t.chunk;
	m->first = t.first;
	m->size = t.size;
	m->fen = t.fen;
	m->cap = cap;
	return 0;
}

static int grow_index(const struct cow_env *env, struct cow_map_index *x, uint64_t cap)
{
	uint64_t *first = env->alloc(cap * sizeof(*first));
	uint32_t *slot = env->alloc(cap * sizeof(*slot)), *crc = env->alloc(cap * sizeof(*crc));
	uint8_t *dirty = env->alloc(cap);
	if (!first || !slot || !crc || !dirty) {
		if (first)
			env->free(first);
		if (slot)
			env->free(slot);
		if (crc)
			env->free(crc);
		if (dirty)
			env->free(dirty);
		return -E_NOMEM;
	}
	if (x->n) {
		memcpy(first, x->first, x->n * sizeof(*first));
		memcpy(slot, x->slot, x->n * sizeof(*slot));
		memcpy(crc, x->crc, x->n * sizeof(*crc));
		memcpy(dirty, x->dirty, x->n);
	}
	if (x->first) {
		env->free(x->first);
		env->free(x->slot);
		env->free(x->crc);
		env->free(x->dirty);
	}
	x->first = first;
	x->slot = slot;
	x->crc = crc;
	x->dirty = dirty;
	x->cap = cap;
	return 0;
}

static struct cow_map_index *new_index(const struct cow_env *env, uint64_t cap)
{
	struct cow_map_index *x = env->alloc(sizeof(*x));
	if (!x)
		return NULL;
	memset(x, 0, sizeof(*x));
	if (grow_index(env, x, cap) < 0) {
		env->free(x);
		return NULL;
	}
	return x;
}

/* Room for the two chunks (and two groups) one update may add, taken before anything changes. */
static int reserve(struct cow_map *m)
{
	if (m->nchunks + 2 > m->cap) {
		int rc = grow_arrays(m, m->cap * 2 > m->nchunks + 2 ? m->cap * 2 : m->nchunks + 2);
		if (rc < 0)
			return rc;
	}
	if (m->idx->n + 2 > m->idx->cap) {
		int rc = grow_index(m->env, m->idx, m->idx->cap * 2 + 2);
		if (rc < 0)
			return rc;
	}
	for (int i = 0; i < 2; i++) {
		if (!m->spare[i] && !(m->spare[i] = m->env->alloc(sizeof(struct cow_map_chunk))))
			return -E_NOMEM;
	}
	return 0;
}

static struct cow_map_chunk *take_spare(struct cow_map *m)
{
	int i = m->spare[1] ? 1 : 0;
	struct cow_map_chunk *c = m->spare[i];
	m->spare[i] = NULL;
	memset(&c->h, 0, sizeof(c->h));
	c->h.magic = PAGE_LEAF;
	c->h.slot = SLOT_NONE;
	c->h.gen = GEN_DIRTY | GEN_MOVED;
	return c;
}

static void drop_chunk(struct cow_map *m, struct cow_map_chunk *c)
{
	free_slot(m, c->h.slot);
	if (!m->spare[0])
		m->spare[0] = c;
	else if (!m->spare[1])
		m->spare[1] = c;
	else
		m->env->free(c);
}

/* ---- chunk structure ------------------------------------------------------------------------ */

static void insert_chunk(struct cow_map *m, uint64_t k, struct cow_map_chunk *c)
{
	uint64_t tail = m->nchunks - k;
	memmove(&m->chunk[k + 1], &m->chunk[k], tail * sizeof(*m->chunk));
	memmove(&m->first[k + 1], &m->first[k], tail * sizeof(*m->first));
	m->chunk[k] = c;
	m->first[k] = ent_start(c, 0);
	m->nchunks++;
	grp_after_insert(m, k);
}

/* Drops the empty chunks among [lo, hi] in one pass; groups follow. Returns the new hi. */
static uint64_t remove_empty(struct cow_map *m, uint64_t lo, uint64_t hi)
{
	struct cow_map_index *x = m->idx;
	uint64_t w = lo, removed = 0, g = grp_of(m, lo), glo = g;
	for (uint64_t r = lo; r <= hi; r++) {
		/* A group's first chunk moves down by the chunks removed before it. */
		while (g + 1 < x->n && x->first[g + 1] <= r) {
			g++;
			x->first[g] -= removed;
		}
		if (m->chunk[r]->h.n == 0) {
			/* Its sectors now end the chunk before it. */
			if (w)
				moved(m, m->chunk[w - 1]);
			drop_chunk(m, m->chunk[r]);
			x->dirty[g] = 1;
			removed++;
			continue;
		}
		m->chunk[w] = m->chunk[r];
		m->first[w] = m->first[r];
		w++;
	}
	if (!removed)
		return hi;
	uint64_t ghi = g;
	for (uint64_t h = g + 1; h < x->n; h++)
		x->first[h] -= removed;
	uint64_t tail = m->nchunks - hi - 1;
	memmove(&m->chunk[w], &m->chunk[hi + 1], tail * sizeof(*m->chunk));
	memmove(&m->first[w], &m->first[hi + 1], tail * sizeof(*m->first));
	m->nchunks -= removed;
	/* Groups left empty go (group 0 too: the next one then starts at chunk 0). */
	for (uint64_t h = glo; h <= ghi && h < x->n && x->n > 1;) {
		uint64_t end = h + 1 < x->n ? x->first[h + 1] : m->nchunks;
		if (x->first[h] >= end) {
			grp_remove(m, h);
			if (!ghi)
				break;
			ghi--;
			continue;
		}
		h++;
	}
	x->first[0] = 0;
	grp_fix(m, glo ? glo - 1 : 0, ghi + 1);
	return hi - removed;
}

/* Splits a full chunk in halves. */
static void split_chunk(struct cow_map *m, uint64_t k)
{
	struct cow_map_chunk *a = m->chunk[k], *b = take_spare(m);
	uint32_t half = a->h.n / 2;
	b->h.n = a->h.n - half;
	memcpy(b->e, a->e + half, b->h.n * sizeof(b->e[0]));
	a->h.n = half;
	moved(m, a);
	insert_chunk(m, k + 1, b);
}

/* Room in a full chunk by moving extents into a neighbour that has some (half its free
 * slots), so that updates in sector order (a rescue's passes) fill chunks before splitting. */
static bool shift_to_neighbour(struct cow_map *m, uint64_t k)
{
	struct cow_map_chunk *c = m->chunk[k];
	size_t sz = sizeof(c->e[0]);
	if (k + 1 < m->nchunks && m->chunk[k + 1]->h.n + 16 < CHUNK_MAX) {
		struct cow_map_chunk *b = m->chunk[k + 1];
		uint32_t d = (CHUNK_MAX - b->h.n) / 2;
		memmove(b->e + d, b->e, b->h.n * sz);
		memcpy(b->e, c->e + c->h.n - d, d * sz);
		b->h.n += d;
		c->h.n -= d;
		m->first[k + 1] = ent_start(b, 0);
		moved(m, b);
		moved(m, c);
		return true;
	}
	if (k > 0 && m->chunk[k - 1]->h.n + 16 < CHUNK_MAX) {
		struct cow_map_chunk *a = m->chunk[k - 1];
		uint32_t d = (CHUNK_MAX - a->h.n) / 2;
		memcpy(a->e + a->h.n, c->e, d * sz);
		memmove(c->e, c->e + d, (c->h.n - d) * sz);
		a->h.n += d;
		c->h.n -= d;
		m->first[k] = ent_start(c, 0);
		moved(m, a);
		moved(m, c);
		return true;
	}
	return false;
}

/* Makes an extent start at `sector`. */
static void split_at(struct cow_map *m, uint64_t sector, bool *restructured)
{
	if (sector >= m->sectors)
		return;
	struct pos p = pos_of(m, sector);
	if (ent_start(m->chunk[p.k], p.i) == sector)
		return;
	if (m->chunk[p.k]->h.n == CHUNK_MAX) {
		if (!shift_to_neighbour(m, p.k)) {
			split_chunk(m, p.k);
			*restructured = true;
		}
		p = pos_of(m, sector);
	}
	struct cow_map_chunk *c = m->chunk[p.k];
	uint64_t *e = &c->e[p.i];
	memmove(e + 2, e + 1, (c->h.n - p.i - 1) * sizeof(*e));
	e[1] = ENT(sector, 0, 0) | ENT_FLAGS(e[0]);
	c->h.n++;
	m->n++;
	touch(m, c);
}

/* Chunks below half full among [lo, hi] are merged into or evened out with their neighbour. */
static bool fix_underflow(struct cow_map *m, uint64_t lo, uint64_t hi)
{
	bool any = false;
	if (hi >= m->nchunks)
		hi = m->nchunks - 1;
	for (uint64_t k = lo; k <= hi && !any; k++)
		any = m->chunk[k]->h.n < CHUNK_MIN;
	if (!any || m->nchunks < 2)
		return false;
	bool emptied = false;
	size_t sz = sizeof(uint64_t);
	uint64_t w = lo;
	for (uint64_t r = lo + 1; r <= hi; r++) {
		struct cow_map_chunk *a = m->chunk[w], *b = m->chunk[r];
		if (a->h.n >= CHUNK_MIN && b->h.n >= CHUNK_MIN) {
			w = r;
			continue;
		}
		moved(m, a);
		moved(m, b);
		if (a->h.n + b->h.n <= CHUNK_MAX) {
			memcpy(a->e + a->h.n, b->e, b->h.n * sz);
			a->h.n += b->h.n;
			b->h.n = 0;
			emptied = true;
			continue;   /* w stays: it may take the next one too */
		}
		uint32_t want = (a->h.n + b->h.n) / 2;
		if (a->h.n < want) {
			uint32_t d = want - a->h.n;
			memcpy(a->e + a->h.n, b->e, d * sz);
			memmove(b->e, b->e + d, (b->h.n - d) * sz);
			a->h.n += d;
			b->h.n -= d;
		} else {
			uint32_t d = a->h.n - want;
			memmove(b->e + d, b->e, b->h.n * sz);
			memcpy(b->e, a->e + want, d * sz);
			a->h.n -= d;
			b->h.n += d;
		}
		m->first[r] = ent_start(b, 0);
		w = r;
	}
	if (emptied)
		remove_empty(m, lo, hi);
	return emptied;
}

/* ---- the public map ----------------------------------------------------------------------- */

static void views_reset(struct cow_map *m)
{
	for (uint32_t v = 0; v < NVIEW; v++)
		m->view_chg[v] = UINT64_MAX;
}

int cow_map_init(struct cow_map *m, const struct cow_env *env, uint64_t sectors, uint64_t max)
{
	memset(m, 0, sizeof(*m));
	m->env = env;
	m->sectors = sectors;
	m->max = max;
	views_reset(m);
	if (!(m->idx = new_index(env, 4)))
		return -E_NOMEM;
	int rc = grow_arrays(m, 16);
	struct cow_map_chunk *c = rc == 0 ? env->alloc(sizeof(*c)) : NULL;
	if (!c) {
		free_arrays(env, m);
		free_index(env, m->idx);
		m->idx = NULL;
		return -E_NOMEM;
	}
	memset(&c->h, 0, sizeof(c->h));
	c->h.magic = PAGE_LEAF;
	c->h.slot = SLOT_NONE;
	c->h.gen = GEN_DIRTY | GEN_MOVED;
	c->h.n = 1;
	c->e[0] = ENT(0, 0, 0);
	m->chunk[0] = c;
	m->nchunks = 1;
	m->n = 1;
	m->idx->n = 1;
	m->idx->first[0] = 0;
	m->idx->slot[0] = SLOT_NONE;
	m->idx->dirty[0] = 1;
	fen_rebuild(m);
	return 0;
}

void cow_map_free(struct cow_map *m)
{
	for (uint64_t k = 0; k < m->nchunks; k++)
		m->env->free(m->chunk[k]);
	for (int i = 0; i < 2; i++)
		if (m->spare[i])
			m->env->free(m->spare[i]);
	free_arrays(m->env, m);
	if (m->idx)
		free_index(m->env, m->idx);
	m->idx = NULL;
	m->spare[0] = m->spare[1] = NULL;
	m->nchunks = m->cap = 0;
	m->n = 0;
}

uint64_t cow_map_bytes(const struct cow_map *m)
{
	uint64_t spares = (m->spare[0] != NULL) + (m->spare[1] != NULL);
	uint64_t idx = m->idx ? m->idx->cap * (8 + 4 + 4 + 1) + m->idx->freedcap * 4 : 0;
	return (m->nchunks + spares) * sizeof(struct cow_map_chunk) +
	       m->cap * (sizeof(*m->chunk) + sizeof(*m->first) + sizeof(*m->size)) + (m->cap + 1) * sizeof(*m->fen) +
	       idx;
}

int cow_map_set(struct cow_map *m, uint64_t start, uint64_t count, uint8_t state, int written)
{
	if (!count)
		return 0;
	if (start >= m->sectors || count > m->sectors - start)
		return -E_RANGE;
	if (state && cow_state_index(state) < 0)
		return -E_INVAL;
	/* Refused before any change: a map the cow cannot store must not be built. Only the ends can
	 * add extents, so an update that splits none is allowed on a full map. */
	uint64_t end = start + count;
	struct pos ps = pos_of(m, start);
	bool split_start = ent_start(m->chunk[ps.k], ps.i) != start;
	bool split_end = false;
	if (end < m->sectors) {
		struct pos pe = pos_of(m, end);
		split_end = ent_start(m->chunk[pe.k], pe.i) != end;
	}
	if (m->n + split_start + split_end > m->max)
		return -E_NOSPC;
	int rc = reserve(m);
	if (rc < 0)
		return rc;
	m->idx->changes++;
	bool restructured = false;
	split_at(m, start, &restructured);
	split_at(m, end, &restructured);

	/* One pass from the extent at `start` to the one at `end`: new flags, then each extent equal
	 * to the one before it is dropped (its sectors join that one). */
	uint64_t k0 = chunk_of(m, start), k = k0;
	uint32_t i = index_in(m->chunk[k], start);
	unsigned prev = 0xff;
	if (i)
		prev = ENT_FLAGS(m->chunk[k]->e[i - 1]);
	else if (k)
		prev = ENT_FLAGS(m->chunk[k - 1]->e[m->chunk[k - 1]->h.n - 1]);
	unsigned sidx = state ? (unsigned)cow_state_index(state) : 0;
	bool done = false, emptied = false;
	uint64_t khi = k;
	for (; k < m->nchunks && !done; k++, i = 0) {
		struct cow_map_chunk *c = m->chunk[k];
		uint32_t w = i, r = i;
		bool changed = false;
		for (; r < c->h.n; r++) {
			uint64_t e = c->e[r], s = ENT_START(e);
			unsigned f = ENT_FLAGS(e);
			if (s < end) {
				if (state)
					f = (f & 8u) | sidx;
				if (written >= 0)
					f = (f & 7u) | (written ? 8u : 0u);
			}
			if (f == prev) {
				m->n--;
				changed = true;
				if (s >= end) {
					r++;
					done = true;
					break;
				}
				continue;
			}
			if (ENT(s, 0, 0) + f != e || w != r)
				changed = true;
			c->e[w++] = ENT(s, 0, 0) + f;
			prev = f;
			if (s >= end) {
				r++;
				done = true;
				break;
			}
		}
		if (w != r) {
			memmove(c->e + w, c->e + r, (c->h.n - r) * sizeof(c->e[0]));
			c->h.n -= r - w;
		}
		if (changed)
			touch(m, c);
		if (c->h.n == 0)
			emptied = true;
		else
			m->first[k] = ent_start(c, 0);
		khi = k;
	}
	uint64_t lo = k0 ? k0 - 1 : 0, hi = khi + 1 < m->nchunks ? khi + 1 : m->nchunks - 1;
	if (emptied) {
		hi = remove_empty(m, k0, khi);
		hi = hi + 1 < m->nchunks ? hi + 1 : m->nchunks - 1;
		restructured = true;
	}
	if (fix_underflow(m, lo, hi))
		restructured = true;
	if (hi >= m->nchunks)
		hi = m->nchunks - 1;
	/* (A chunk whose first sector moved is found by the commit: its page's first differs.) */
	if (restructured) {
		fen_rebuild(m);
		return 0;
	}
	for (uint64_t j = lo; j <= hi; j++) {
		m->first[j] = ent_start(m->chunk[j], 0);
		if (m->size[j] != m->chunk[j]->h.n) {
			fen_add(m, j, (int64_t)m->chunk[j]->h.n - (int64_t)m->size[j]);
			m->size[j] = m->chunk[j]->h.n;
		}
	}
	return 0;
}

/* Groups of LOAD_FILL chunks over a freshly built chunk array. */
static int index_fresh(struct cow_map *m)
{
	uint64_t ng = (m->nchunks + LOAD_FILL - 1) / LOAD_FILL;
	struct cow_map_index *x = new_index(m->env, ng + 4);
	if (!x)
		return -E_NOMEM;
	for (uint64_t g = 0; g < ng; g++) {
		x->first[g] = g * LOAD_FILL;
		x->slot[g] = SLOT_NONE;
		x->crc[g] = 0;
		x->dirty[g] = 1;
	}
	x->n = ng;
	m->idx = x;
	return 0;
}

static void replace_map(struct cow_map *m, struct cow_map *t)
{
	uint64_t changes = m->idx ? m->idx->changes + 1 : 1;
	cow_map_free(m);
	*m = *t;
	m->idx->changes = changes;
	views_reset(m);
	fen_rebuild(m);
}

int cow_map_load(struct cow_map *m, uint64_t n, void (*get)(void *ctx, uint64_t i, struct cow_extent *e),
		 void *ctx)
{
	if (!n)
		return -E_CORRUPT;
	if (n > m->max)
		return -E_NOSPC;
	struct cow_map t = { .env = m->env, .sectors = m->sectors, .max = m->max };
	int rc = grow_arrays(&t, (n + LOAD_FILL - 1) / LOAD_FILL + 2);
	uint64_t next = 0;
	unsigned prev = 0xff;
	struct cow_map_chunk *c = NULL;
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		struct cow_extent x;
		get(ctx, i, &x);
		if (x.start != next || !x.count || x.count > m->sectors - next || cow_state_index(x.state) < 0 ||
		    x.written > 1) {
			rc = -E_CORRUPT;
			break;
		}
		next += x.count;
		unsigned f = (unsigned)cow_state_index(x.state) | (x.written ? 8u : 0u);
		if (f == prev)
			continue;
		prev = f;
		if (!c || c->h.n == LOAD_FILL) {
			if (!(c = m->env->alloc(sizeof(*c)))) {
				rc = -E_NOMEM;
				break;
			}
			memset(&c->h, 0, sizeof(c->h));
			c->h.magic = PAGE_LEAF;
			c->h.slot = SLOT_NONE;
			c->h.gen = GEN_DIRTY | GEN_MOVED;
			t.chunk[t.nchunks++] = c;
		}
		c->e[c->h.n++] = ENT(x.start, 0, 0) + f;
		t.n++;
	}
	if (rc == 0 && next != m->sectors)
		rc = -E_CORRUPT;
	if (rc == 0)
		rc = index_fresh(&t);
	if (rc < 0) {
		cow_map_free(&t);
		return rc;
	}
	replace_map(m, &t);
	return 0;
}

int map_adopt(struct cow_map *m, struct cow_map_chunk **chunks, uint64_t nchunks, uint64_t n,
	      const uint32_t *gcount, const uint32_t *gslot, const uint32_t *gcrc, uint64_t ng)
{
	struct cow_map t = { .env = m->env, .sectors = m->sectors, .max = m->max };
	int rc = n > m->max ? -E_NOSPC : grow_arrays(&t, nchunks + 2);
	struct cow_map_index *x = rc == 0 ? new_index(m->env, ng + 4) : NULL;
	if (!x) {
		for (uint64_t k = 0; k < nchunks; k++)
			m->env->free(chunks[k]);
		free_arrays(m->env, &t);
		return rc < 0 ? rc : -E_NOMEM;
	}
	memcpy(t.chunk, chunks, nchunks * sizeof(*chunks));
	t.nchunks = nchunks;
	t.n = n;
	uint64_t f = 0;
	for (uint64_t g = 0; g < ng; g++) {
		x->first[g] = f;
		x->slot[g] = gslot[g];
		x->crc[g] = gcrc[g];
		x->dirty[g] = 0;
		f += gcount[g];
	}
	x->n = ng;
	t.idx = x;
	replace_map(m, &t);
	return 0;
}

void map_forget_slots(struct cow_map *m)
{
	for (uint64_t k = 0; k < m->nchunks; k++) {
		m->chunk[k]->h.slot = SLOT_NONE;
		m->chunk[k]->h.gen = GEN_DIRTY | GEN_MOVED;
	}
	for (uint64_t g = 0; g < m->idx->n; g++) {
		m->idx->slot[g] = SLOT_NONE;
		m->idx->dirty[g] = 1;
	}
	m->idx->nfreed = 0;
}

int map_normalize(struct cow_map *m)
{
	for (uint64_t k = 1; k < m->nchunks; k++) {
		const struct cow_map_chunk *a = m->chunk[k - 1], *b = m->chunk[k];
		unsigned f = ENT_FLAGS(b->e[0]);
		if (ENT_FLAGS(a->e[a->h.n - 1]) != f)
			continue;
		/* Setting its first sector to what it already is merges it into the extent before. */
		int rc = cow_map_set(m, m->first[k], 1, map_state_char(f & 7), (f >> 3) & 1);
		if (rc < 0)
			return rc;
		k = k > 1 ? k - 2 : 0;   /* chunks may have merged: look again from the one before */
	}
	return 0;
}

void cow_map_totals(const struct cow_map *m, struct cow_totals *t)
{
	memset(t, 0, sizeof(*t));
	unsigned prev = 0xff;
	for (uint64_t k = 0; k < m->nchunks; k++) {
		const struct cow_map_chunk *c = m->chunk[k];
		for (uint32_t i = 0; i < c->h.n; i++) {
			uint64_t e = c->e[i], s = ENT_START(e);
			uint64_t end = i + 1 < c->h.n ? ent_start(c, i + 1) : chunk_end(m, k);
			unsigned st = (unsigned)(e & 7);
			if (st > 4)
				continue;
			t->sectors[st] += end - s;
			/* An area is a run of one state, whatever the written flag splits it into. */
			if (st != prev)
				t->areas[st]++;
			prev = st;
			if (e & 8)
				t->written += end - s;
		}
	}
}
