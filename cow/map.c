/* The rescue map: extents tiling the source in sector order, held in chunks of at most CHUNK_MAX
 * (one 8 KiB heap block each) beside a sorted array of the chunks' first sectors. A lookup is two
 * binary searches; an update moves at most a chunk's tail, so it stays cheap at a million
 * extents. Chunks split when full and are merged or evened out below half full, which bounds the
 * memory to twice the extents' own size; a Fenwick tree of chunk sizes gives extent indexes. */
#include "cow.h"
#include "../lib/errors.h"

#define CHUNK_MAX 340u            /* 8 + 340 * 24 = 8168 bytes: the 8 KiB heap class */
#define CHUNK_MIN (CHUNK_MAX / 2)
#define LOAD_FILL (CHUNK_MAX * 3 / 4)   /* a loaded map leaves room to grow in every chunk */

struct cow_map_chunk {
	uint32_t n, pad;
	struct cow_extent e[CHUNK_MAX];
};
_Static_assert(sizeof(struct cow_map_chunk) <= 8192, "a chunk is one 8 KiB heap block");

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

static int same(const struct cow_extent *a, const struct cow_extent *b)
{
	return a->state == b->state && a->written == b->written;
}

/* ---- the Fenwick tree of chunk sizes (1-based: fen[k + 1] covers chunk k) ---------------- */

static void fen_add(struct cow_map *m, uint64_t k, int64_t d)
{
	for (uint64_t i = k + 1; i <= m->nchunks; i += i & (~i + 1))
		m->fen[i] += (uint64_t)d;
}

/* Extents in chunks [0, k). */
static uint64_t fen_prefix(const struct cow_map *m, uint64_t k)
{
	uint64_t s = 0;
	for (uint64_t i = k; i; i &= i - 1)
		s += m->fen[i];
	return s;
}

/* Recounts every chunk: after chunks were added or removed. */
static void fen_rebuild(struct cow_map *m)
{
	for (uint64_t k = 0; k < m->nchunks; k++) {
		m->size[k] = m->chunk[k]->n;
		m->first[k] = m->chunk[k]->e[0].start;
		m->fen[k + 1] = m->size[k];
	}
	for (uint64_t i = 1; i <= m->nchunks; i++) {
		uint64_t j = i + (i & (~i + 1));
		if (j <= m->nchunks)
			m->fen[j] += m->fen[i];
	}
}

/* ---- searching ---------------------------------------------------------------------------- */

/* The hint is a cache, not part of the map's value: updating it through a const map is fine
 * because no map is ever defined const. */
static void set_hint(const struct cow_map *m, uint64_t k)
{
	((struct cow_map *)m)->hint = k;
}

static uint64_t chunk_of(const struct cow_map *m, uint64_t sector)
{
	uint64_t h = m->hint;
	if (h < m->nchunks && m->first[h] <= sector && (h + 1 == m->nchunks || sector < m->first[h + 1]))
		return h;
	uint64_t lo = 0, hi = m->nchunks - 1;
	while (lo < hi) {
		uint64_t mid = (lo + hi + 1) / 2;
		if (m->first[mid] <= sector)
			lo = mid;
		else
			hi = mid - 1;
	}
	set_hint(m, lo);
	return lo;
}

static uint32_t index_in(const struct cow_map_chunk *c, uint64_t sector)
{
	uint32_t lo = 0, hi = c->n - 1;
	while (lo < hi) {
		uint32_t mid = (lo + hi + 1) / 2;
		if (c->e[mid].start <= sector)
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

static bool pos_next(const struct cow_map *m, struct pos *p)
{
	if (++p->i < m->chunk[p->k]->n)
		return true;
	p->k++;
	p->i = 0;
	return p->k < m->nchunks;
}

static struct cow_extent *at(const struct cow_map *m, struct pos p)
{
	return &m->chunk[p.k]->e[p.i];
}

uint64_t cow_map_lookup(const struct cow_map *m, uint64_t sector)
{
	struct pos p = pos_of(m, sector);
	return fen_prefix(m, p.k) + p.i;
}

const struct cow_extent *cow_map_at(const struct cow_map *m, uint64_t sector)
{
	return at(m, pos_of(m, sector));
}

const struct cow_extent *cow_map_get(const struct cow_map *m, uint64_t i)
{
	if (i >= m->n)
		return NULL;
	/* Descends the Fenwick tree to the chunk holding extent i. */
	uint64_t k = 0, step = 1;
	while (step * 2 <= m->nchunks)
		step *= 2;
	for (; step; step /= 2) {
		if (k + step <= m->nchunks && m->fen[k + step] <= i) {
			k += step;
			i -= m->fen[k];
		}
	}
	return &m->chunk[k]->e[i];
}

const struct cow_extent *cow_map_next(const struct cow_map *m, const struct cow_extent *x)
{
	uint64_t k = chunk_of(m, x->start);
	const struct cow_map_chunk *c = m->chunk[k];
	if ((uint64_t)(x - c->e) + 1 < c->n)
		return x + 1;
	if (k + 1 == m->nchunks)
		return NULL;
	set_hint(m, k + 1);
	return &m->chunk[k + 1]->e[0];
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

/* Arrays for `cap` chunks, the old entries copied. */
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

/* Room for the two chunks one update may add, taken before anything changes. */
static int reserve(struct cow_map *m)
{
	if (m->nchunks + 2 > m->cap) {
		int rc = grow_arrays(m, m->cap * 2 > m->nchunks + 2 ? m->cap * 2 : m->nchunks + 2);
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
	c->n = 0;
	return c;
}

static void drop_chunk(struct cow_map *m, struct cow_map_chunk *c)
{
	if (!m->spare[0])
		m->spare[0] = c;
	else if (!m->spare[1])
		m->spare[1] = c;
	else
		m->env->free(c);
}

/* ---- chunk structure: first[] stays exact throughout; sizes are recounted afterwards ------- */

static void insert_chunk(struct cow_map *m, uint64_t k, struct cow_map_chunk *c)
{
	uint64_t tail = m->nchunks - k;
	memmove(&m->chunk[k + 1], &m->chunk[k], tail * sizeof(*m->chunk));
	memmove(&m->first[k + 1], &m->first[k], tail * sizeof(*m->first));
	m->chunk[k] = c;
	m->first[k] = c->e[0].start;
	m->nchunks++;
}

static void remove_chunks(struct cow_map *m, uint64_t k, uint64_t cnt)
{
	for (uint64_t i = 0; i < cnt; i++)
		drop_chunk(m, m->chunk[k + i]);
	uint64_t tail = m->nchunks - k - cnt;
	memmove(&m->chunk[k], &m->chunk[k + cnt], tail * sizeof(*m->chunk));
	memmove(&m->first[k], &m->first[k + cnt], tail * sizeof(*m->first));
	m->nchunks -= cnt;
}

/* Splits a full chunk in halves. */
static void split_chunk(struct cow_map *m, uint64_t k)
{
	struct cow_map_chunk *a = m->chunk[k], *b = take_spare(m);
	uint32_t half = a->n / 2;
	b->n = a->n - half;
	memcpy(b->e, a->e + half, b->n * sizeof(b->e[0]));
	a->n = half;
	insert_chunk(m, k + 1, b);
}

/* A chunk below half full is merged into its neighbour when both fit one chunk, else the two
 * are evened out (then both hold at least half). Returns true when chunks were removed. */
static bool fix_underflow(struct cow_map *m, uint64_t k)
{
	if (m->nchunks < 2 || m->chunk[k]->n >= CHUNK_MIN)
		return false;
	uint64_t l = k + 1 < m->nchunks ? k : k - 1;
	struct cow_map_chunk *a = m->chunk[l], *b = m->chunk[l + 1];
	size_t sz = sizeof(a->e[0]);
	if (a->n + b->n <= CHUNK_MAX) {
		memcpy(a->e + a->n, b->e, b->n * sz);
		a->n += b->n;
		remove_chunks(m, l + 1, 1);
		return true;
	}
	uint32_t want = (a->n + b->n) / 2;
	if (a->n < want) {
		uint32_t d = want - a->n;
		memcpy(a->e + a->n, b->e, d * sz);
		memmove(b->e, b->e + d, (b->n - d) * sz);
		a->n += d;
		b->n -= d;
	} else {
		uint32_t d = a->n - want;
		memmove(b->e + d, b->e, b->n * sz);
		memcpy(b->e, a->e + want, d * sz);
		a->n -= d;
		b->n += d;
	}
	m->first[l + 1] = b->e[0].start;
	return false;
}

/* Room in a full chunk by moving extents into a neighbour that has some (half its free
 * slots), so that updates in sector order (a rescue's passes) fill chunks before splitting. */
static bool shift_to_neighbour(struct cow_map *m, uint64_t k)
{
	struct cow_map_chunk *c = m->chunk[k];
	size_t sz = sizeof(c->e[0]);
	if (k + 1 < m->nchunks && m->chunk[k + 1]->n + 16 < CHUNK_MAX) {
		struct cow_map_chunk *b = m->chunk[k + 1];
		uint32_t d = (CHUNK_MAX - b->n) / 2;
		memmove(b->e + d, b->e, b->n * sz);
		memcpy(b->e, c->e + c->n - d, d * sz);
		b->n += d;
		c->n -= d;
		m->first[k + 1] = b->e[0].start;
		return true;
	}
	if (k > 0 && m->chunk[k - 1]->n + 16 < CHUNK_MAX) {
		struct cow_map_chunk *a = m->chunk[k - 1];
		uint32_t d = (CHUNK_MAX - a->n) / 2;
		memcpy(a->e + a->n, c->e, d * sz);
		memmove(c->e, c->e + d, (c->n - d) * sz);
		a->n += d;
		c->n -= d;
		m->first[k] = c->e[0].start;
		return true;
	}
	return false;
}

/* Makes an extent start at `sector` (p: its position from pos_of) and returns where that
 * extent is; past the end for the map's end. *moved: extents changed chunks, so positions
 * taken before are stale. */
static struct pos split_at(struct cow_map *m, uint64_t sector, struct pos p, bool *restructured, bool *moved)
{
	if (sector >= m->sectors)
		return (struct pos){ m->nchunks, 0 };
	if (at(m, p)->start == sector)
		return p;
	if (m->chunk[p.k]->n == CHUNK_MAX) {
		if (!shift_to_neighbour(m, p.k)) {
			split_chunk(m, p.k);
			*restructured = true;
		}
		*moved = true;
		p = pos_of(m, sector);
	}
	struct cow_map_chunk *c = m->chunk[p.k];
	struct cow_extent *e = &c->e[p.i];
	memmove(e + 2, e + 1, (c->n - p.i - 1) * sizeof(*e));
	e[1] = (struct cow_extent){ sector, e->start + e->count - sector, e->state, e->written };
	e->count = sector - e->start;
	c->n++;
	m->n++;
	return (struct pos){ p.k, p.i + 1 };
}

/* ---- the public map ----------------------------------------------------------------------- */

int cow_map_init(struct cow_map *m, const struct cow_env *env, uint64_t sectors, uint64_t max)
{
	memset(m, 0, sizeof(*m));
	m->env = env;
	m->sectors = sectors;
	m->max = max;
	int rc = grow_arrays(m, 16);
	if (rc < 0)
		return rc;
	struct cow_map_chunk *c = env->alloc(sizeof(*c));
	if (!c) {
		free_arrays(env, m);
		return -E_NOMEM;
	}
	c->n = 1;
	c->e[0] = (struct cow_extent){ 0, sectors, COW_NONTRIED, 0 };
	m->chunk[0] = c;
	m->nchunks = 1;
	m->n = 1;
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
	m->spare[0] = m->spare[1] = NULL;
	m->nchunks = m->cap = 0;
	m->n = 0;
}

uint64_t cow_map_bytes(const struct cow_map *m)
{
	uint64_t spares = (m->spare[0] != NULL) + (m->spare[1] != NULL);
	return (m->nchunks + spares) * sizeof(struct cow_map_chunk) +
	       m->cap * (sizeof(*m->chunk) + sizeof(*m->first) + sizeof(*m->size)) + (m->cap + 1) * sizeof(*m->fen);
}

int cow_map_set(struct cow_map *m, uint64_t start, uint64_t count, uint8_t state, int written)
{
	if (!count)
		return 0;
	if (start >= m->sectors || count > m->sectors - start)
		return -E_RANGE;
	if (state && cow_state_index(state) < 0)
		return -E_INVAL;
	/* Refused before any change: a map that cannot be checkpointed must not be built. Only
	 * the ends can add extents, so an update that splits none is allowed on a full map. */
	uint64_t end = start + count;
	struct pos ps = pos_of(m, start), pe = end < m->sectors ? pos_of(m, end) : (struct pos){ m->nchunks, 0 };
	bool split_start = at(m, ps)->start != start, split_end = end < m->sectors && at(m, pe)->start != end;
	if (m->n + split_start + split_end > m->max)
		return -E_NOSPC;
	int rc = reserve(m);
	if (rc < 0)
		return rc;
	/* Two searches in all: a split that only inserts in place moves a later position by one. */
	bool restructured = false, moved = false;
	struct pos p = split_at(m, start, ps, &restructured, &moved);
	if (moved)
		pe = end < m->sectors ? pos_of(m, end) : (struct pos){ m->nchunks, 0 };
	else if (split_start && pe.k == ps.k)
		pe.i++;
	moved = false;
	split_at(m, end, pe, &restructured, &moved);
	if (moved)
		p = pos_of(m, start);
	struct pos q = p;
	bool more;
	do {
		struct cow_extent *x = at(m, q);
		if (x->start >= end)
			break;
		if (state)
			x->state = state;
		if (written >= 0)
			x->written = (uint8_t)written;
	} while ((more = pos_next(m, &q)));
	/* q: the extent starting at `end`, or past the end. Equal neighbours are merged from the
	 * extent before the range to q, writing over the slots already read (w is behind r). */
	struct pos w = p, last = q;
	if (w.i)
		w.i--;
	else if (w.k)
		w = (struct pos){ w.k - 1, m->chunk[w.k - 1]->n - 1 };
	if (last.k == m->nchunks)
		last = (struct pos){ m->nchunks - 1, m->chunk[m->nchunks - 1]->n - 1 };
	struct pos r = w;
	struct cow_extent *wx = at(m, w);
	uint64_t merged = 0;
	while ((more = pos_next(m, &r)) && (r.k < last.k || (r.k == last.k && r.i <= last.i))) {
		struct cow_extent *rx = at(m, r);
		if (same(wx, rx)) {
			wx->count += rx->count;
			merged++;
			continue;
		}
		pos_next(m, &w);
		wx = at(m, w);
		if (wx != rx)
			*wx = *rx;
	}
	uint64_t lo = w.k, hi = r.k;   /* the chunks whose contents changed */
	if (merged) {
		/* The slots between w and r are gone: close the gap. */
		struct cow_map_chunk *wc = m->chunk[w.k];
		size_t sz = sizeof(wc->e[0]);
		if (r.k == w.k) {
			memmove(wc->e + w.i + 1, wc->e + r.i, (wc->n - r.i) * sz);
			wc->n = w.i + 1 + (wc->n - r.i);
		} else {
			wc->n = w.i + 1;
			if (r.k < m->nchunks && r.i) {
				struct cow_map_chunk *rc2 = m->chunk[r.k];
				memmove(rc2->e, rc2->e + r.i, (rc2->n - r.i) * sz);
				rc2->n -= r.i;
				m->first[r.k] = rc2->e[0].start;
			}
			if (r.k > w.k + 1) {
				remove_chunks(m, w.k + 1, r.k - w.k - 1);
				restructured = true;
				hi = w.k + 1;
			}
		}
		m->n -= merged;
		for (uint64_t k = w.k; k <= w.k + 1 && k < m->nchunks;) {
			if (fix_underflow(m, k))
				restructured = true;
			else
				k++;
		}
	}
	if (restructured) {
		fen_rebuild(m);
		return 0;
	}
	/* Only sizes changed: the tree is updated in place. */
	lo = lo ? lo - 1 : 0;
	hi = hi + 1 < m->nchunks ? hi + 1 : m->nchunks - 1;
	for (uint64_t k = lo; k <= hi; k++) {
		m->first[k] = m->chunk[k]->e[0].start;
		if (m->size[k] != m->chunk[k]->n) {
			fen_add(m, k, (int64_t)m->chunk[k]->n - (int64_t)m->size[k]);
			m->size[k] = m->chunk[k]->n;
		}
	}
	return 0;
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
		if (c && same(&c->e[c->n - 1], &x)) {
			c->e[c->n - 1].count += x.count;
			continue;
		}
		if (!c || c->n == LOAD_FILL) {
			if (!(c = m->env->alloc(sizeof(*c)))) {
				rc = -E_NOMEM;
				break;
			}
			c->n = 0;
			t.chunk[t.nchunks++] = c;
		}
		c->e[c->n++] = x;
		t.n++;
	}
	if (rc == 0 && next != m->sectors)
		rc = -E_CORRUPT;
	if (rc < 0) {
		cow_map_free(&t);
		return rc;
	}
	fen_rebuild(&t);
	cow_map_free(m);
	*m = t;
	return 0;
}

void cow_map_totals(const struct cow_map *m, struct cow_totals *t)
{
	memset(t, 0, sizeof(*t));
	uint8_t prev = 0;
	for (uint64_t k = 0; k < m->nchunks; k++) {
		const struct cow_map_chunk *c = m->chunk[k];
		for (uint32_t i = 0; i < c->n; i++) {
			const struct cow_extent *x = &c->e[i];
			int s = cow_state_index(x->state);
			if (s < 0)
				continue;
			t->sectors[s] += x->count;
			/* An area is a run of one state, whatever the written flag splits it into. */
			if (x->state != prev)
				t->areas[s]++;
			prev = x->state;
			if (x->written)
				t->written += x->count;
		}
	}
}
