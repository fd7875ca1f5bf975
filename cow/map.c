/* The rescue map: a sorted array of extents covering the whole source, split and merged in
 * place. Lookups are binary searches; updates move the tail of the array. */
#include "cow.h"
#include "errors.h"

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

int cow_map_init(struct cow_map *m, const struct cow_env *env, uint64_t sectors, uint64_t max)
{
	memset(m, 0, sizeof(*m));
	m->env = env;
	m->sectors = sectors;
	m->max = max;
	m->cap = 64;
	m->ext = env->alloc(m->cap * sizeof(*m->ext));
	if (!m->ext)
		return -E_NOMEM;
	m->ext[0] = (struct cow_extent){ 0, sectors, COW_NONTRIED, 0 };
	m->n = 1;
	return 0;
}

void cow_map_free(struct cow_map *m)
{
	if (m->ext)
		m->env->free(m->ext);
	m->ext = NULL;
	m->n = 0;
}

uint64_t cow_map_lookup(const struct cow_map *m, uint64_t sector)
{
	uint64_t lo = 0, hi = m->n - 1;
	while (lo < hi) {
		uint64_t mid = (lo + hi + 1) / 2;
		if (m->ext[mid].start <= sector)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static int reserve(struct cow_map *m, uint64_t more)
{
	if (m->n + more <= m->cap)
		return 0;
	uint64_t cap = m->cap * 2 > m->n + more ? m->cap * 2 : m->n + more;
	struct cow_extent *e = m->env->alloc(cap * sizeof(*e));
	if (!e)
		return -E_NOMEM;
	memcpy(e, m->ext, m->n * sizeof(*e));
	m->env->free(m->ext);
	m->ext = e;
	m->cap = cap;
	return 0;
}

/* Splits so that an extent starts at `sector` (if inside the map); returns its index. */
static uint64_t split_at(struct cow_map *m, uint64_t sector)
{
	if (sector >= m->sectors)
		return m->n;
	uint64_t i = cow_map_lookup(m, sector);
	struct cow_extent *e = &m->ext[i];
	if (e->start == sector)
		return i;
	memmove(&m->ext[i + 2], &m->ext[i + 1], (m->n - i - 1) * sizeof(*e));
	m->ext[i + 1] = (struct cow_extent){ sector, e->start + e->count - sector, e->state, e->written };
	e->count = sector - e->start;
	m->n++;
	return i + 1;
}

static int same(const struct cow_extent *a, const struct cow_extent *b)
{
	return a->state == b->state && a->written == b->written;
}

int cow_map_set(struct cow_map *m, uint64_t start, uint64_t count, uint8_t state, int written)
{
	if (!count)
		return 0;
	if (start >= m->sectors || count > m->sectors - start)
		return -E_RANGE;
	if (state && cow_state_index(state) < 0)
		return -E_INVAL;
	/* Refused before any change: a map that cannot be checkpointed must not be built. */
	if (m->n + 2 > m->max)
		return -E_NOSPC;
	int rc = reserve(m, 2);
	if (rc < 0)
		return rc;
	uint64_t first = split_at(m, start), last = split_at(m, start + count);
	for (uint64_t i = first; i < last; i++) {
		if (state)
			m->ext[i].state = state;
		if (written >= 0)
			m->ext[i].written = (uint8_t)written;
	}
	/* Merge equal neighbours from just before the range to just after it. */
	uint64_t lo = first ? first - 1 : 0, hi = last < m->n ? last : m->n - 1, out = lo;
	for (uint64_t i = lo + 1; i <= hi; i++) {
		if (same(&m->ext[out], &m->ext[i]))
			m->ext[out].count += m->ext[i].count;
		else
			m->ext[++out] = m->ext[i];
	}
	uint64_t removed = hi - out;
	if (removed) {
		memmove(&m->ext[out + 1], &m->ext[hi + 1], (m->n - hi - 1) * sizeof(*m->ext));
		m->n -= removed;
	}
	return 0;
}

void cow_map_totals(const struct cow_map *m, struct cow_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (uint64_t i = 0; i < m->n; i++) {
		int k = cow_state_index(m->ext[i].state);
		if (k < 0)
			continue;
		t->sectors[k] += m->ext[i].count;
		/* An area is a run of one state, whatever the written flag splits it into. */
		if (!i || m->ext[i - 1].state != m->ext[i].state)
			t->areas[k]++;
		if (m->ext[i].written)
			t->written += m->ext[i].count;
	}
}

const struct cow_extent *cow_map_at(const struct cow_map *m, uint64_t sector)
{
	return &m->ext[cow_map_lookup(m, sector)];
}

const struct cow_extent *cow_map_get(const struct cow_map *m, uint64_t i)
{
	return i < m->n ? &m->ext[i] : NULL;
}

const struct cow_extent *cow_map_next(const struct cow_map *m, const struct cow_extent *x)
{
	return x + 1 < m->ext + m->n ? x + 1 : NULL;
}

int cow_map_load(struct cow_map *m, uint64_t n, void (*get)(void *ctx, uint64_t i, struct cow_extent *e),
		 void *ctx)
{
	if (!n)
		return -E_CORRUPT;
	if (n > m->max)
		return -E_NOSPC;
	struct cow_extent *e = m->env->alloc(n * sizeof(*e));
	if (!e)
		return -E_NOMEM;
	uint64_t next = 0, k = 0;
	for (uint64_t i = 0; i < n; i++) {
		struct cow_extent x;
		get(ctx, i, &x);
		if (x.start != next || !x.count || x.count > m->sectors - next || cow_state_index(x.state) < 0 ||
		    x.written > 1) {
			m->env->free(e);
			return -E_CORRUPT;
		}
		next += x.count;
		if (k && same(&e[k - 1], &x))
			e[k - 1].count += x.count;
		else
			e[k++] = x;
	}
	if (next != m->sectors) {
		m->env->free(e);
		return -E_CORRUPT;
	}
	m->env->free(m->ext);
	m->ext = e;
	m->n = k;
	m->cap = n;
	return 0;
}
