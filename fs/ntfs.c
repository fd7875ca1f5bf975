/* NTFS reader (fs/ntfs.h): everything goes through the volume's read callback and the env
 * allocator; every on-disk number is checked against the record, the block or the volume. */
#include "ntfs.h"
#include "../lib/errors.h"

#define AT_STD_INFO   0x10
#define AT_ATTR_LIST  0x20
#define AT_FILE_NAME  0x30
#define AT_DATA       0x80
#define AT_INDEX_ROOT 0x90
#define AT_INDEX_ALLOC 0xA0
#define AT_BITMAP     0xB0
#define AT_END        0xFFFFFFFFu

#define ATTR_COMPRESSED 0x0001
#define ATTR_ENCRYPTED  0x4000
#define REC_IN_USE 0x1
#define REC_DIR    0x2
#define REF_MASK   0xFFFFFFFFFFFFull   /* a file reference's record number; the rest is its sequence */
#define MAX_RUNS   (1u << 22)          /* far above any real file, small enough to allocate */
#define MAX_LIST   (1u << 20)          /* attribute list bytes */
#define MAX_DEPTH  256                 /* directory levels followed up to the root */
#define CACHE_N    128
#define WIN_BYTES  (64 * 1024)         /* MFT bytes read at once */
#define UPCASE_BYTES (65536 * 2)

struct ntfs_name_cache {
	struct { uint64_t rec, parent; bool valid; char name[NTFS_NAME_MAX]; } e[CACHE_N];
};

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static void say(struct ntfs_vol *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct ntfs_vol *v, const char *fmt, ...)
{
	v->damaged++;
	if (!v->say)
		return;
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	v->say(v->say_ctx, msg);
}

/* Reads bytes of the volume, refusing anything past its end. */
static int vol_read(struct ntfs_vol *v, uint64_t off, uint32_t len, void *buf)
{
	uint64_t end = v->limit ? v->limit : (v->sectors ? v->sectors * v->sector : 0);
	if (end && (off > end || len > end - off))
		return -E_RANGE;
	return v->read(v->ctx, v->base + off, len, buf);
}

/* ---- runs --------------------------------------------------------------------------------- */

struct runvec { struct ntfs_run *r; uint32_t n, cap; };

static int runvec_push(struct ntfs_vol *v, struct runvec *rv, uint64_t vcn, uint64_t lcn, uint64_t len)
{
	/* A real attribute has at most one run per cluster and a hole between two of them. */
	uint64_t max = 2 * v->clusters + 1 < MAX_RUNS ? 2 * v->clusters + 1 : MAX_RUNS;
	if (rv->n >= max)
		return -E_CORRUPT;
	if (rv->n == rv->cap) {
		uint32_t cap = rv->cap ? rv->cap * 2 : 16;
		if (cap > max)
			cap = (uint32_t)max;
		struct ntfs_run *r = v->env->alloc(sizeof(*r) * cap);
		if (!r)
			return -E_NOMEM;
		if (rv->n)
			memcpy(r, rv->r, sizeof(*r) * rv->n);
		if (rv->r)
			v->env->free(rv->r);
		rv->r = r;
		rv->cap = cap;
	}
	rv->r[rv->n++] = (struct ntfs_run){ vcn, lcn, len };
	return 0;
}

/* Decodes a non-resident attribute's mapping pairs (a: the attribute, alen its length). */
static int runs_decode(struct ntfs_vol *v, const uint8_t *a, uint32_t alen, struct runvec *rv)
{
	uint64_t vcn = le64(a + 16), highest = le64(a + 24);
	const uint8_t *p = a + le16(a + 32), *end = a + alen;
	int64_t lcn = 0;
	while (p < end && *p) {
		unsigned ls = *p & 15, os = *p >> 4;
		p++;
		if (ls == 0 || ls > 8 || os > 8 || (size_t)(end - p) < ls + os)
			return -E_CORRUPT;
		uint64_t len = 0;
		for (unsigned i = 0; i < ls; i++)
			len |= (uint64_t)p[i] << (8 * i);
		p += ls;
		if (len == 0 || len >> 62 || vcn + len < vcn)
			return -E_CORRUPT;
		uint64_t at = NTFS_SPARSE;
		if (os) {
			uint64_t d = 0;
			for (unsigned i = 0; i < os; i++)
				d |= (uint64_t)p[i] << (8 * i);
			if (os < 8 && (p[os - 1] & 0x80))
				d |= ~0ull << (8 * os);
			p += os;
			lcn += (int64_t)d;
			if (lcn < 0 || (uint64_t)lcn >= v->clusters || len > v->clusters - (uint64_t)lcn)
				return -E_RANGE;
			at = (uint64_t)lcn;
		}
		if (highest != UINT64_MAX && vcn + len - 1 > highest)
			return -E_CORRUPT;
		int rc = runvec_push(v, rv, vcn, at, len);
		if (rc < 0)
			return rc;
		vcn += len;
	}
	return 0;
}

/* Heap sort by vcn: runs from several extent records arrive in their list's order. */
static void sift(struct ntfs_run *r, uint32_t root, uint32_t end)
{
	for (;;) {
		uint32_t c = 2 * root + 1;
		if (c >= end)
			return;
		if (c + 1 < end && r[c + 1].vcn > r[c].vcn)
			c++;
		if (r[root].vcn >= r[c].vcn)
			return;
		struct ntfs_run t = r[root]; r[root] = r[c]; r[c] = t;
		root = c;
	}
}

static void runs_sort(struct ntfs_run *r, uint32_t n)
{
	for (uint32_t i = n / 2; i-- > 0;)
		sift(r, i, n);
	for (uint32_t end = n; end > 1;) {
		end--;
		struct ntfs_run t = r[0]; r[0] = r[end]; r[end] = t;
		sift(r, 0, end);
	}
}

/* Reads len bytes at byte offset off of the data the runs describe; holes and bytes no run
 * covers read as zeros. */
static int runs_read(struct ntfs_vol *v, const struct ntfs_run *r, uint32_t n, uint64_t off, uint32_t len,
		     uint8_t *buf)
{
	uint32_t i = 0;
	while (len) {
		uint64_t vcn = off / v->cluster;
		uint32_t in = (uint32_t)(off % v->cluster);
		while (i < n && r[i].vcn + r[i].len <= vcn)
			i++;
		/* Clusters to the end of this run or hole; only a count that fits len is multiplied
		 * out, so a huge sparse run cannot overflow into a zero-length piece. */
		uint64_t left = i < n && r[i].vcn <= vcn ? r[i].vcn + r[i].len - vcn : i < n ? r[i].vcn - vcn : UINT64_MAX;
		uint32_t m = len;
		if (left <= len / v->cluster + 1 && left * v->cluster - in < len)
			m = (uint32_t)(left * v->cluster - in);
		if (m == 0)
			return -E_CORRUPT;
		if (i < n && r[i].vcn <= vcn && r[i].lcn != NTFS_SPARSE) {
			int rc = vol_read(v, (r[i].lcn + (vcn - r[i].vcn)) * v->cluster + in, m, buf);
			if (rc < 0)
				return rc;
		} else {
			memset(buf, 0, m);
		}
		buf += m;
		off += m;
		len -= m;
	}
	return 0;
}

/* ---- records and attributes --------------------------------------------------------------- */

/* Checks and undoes the update sequence of a record or index block (512-byte strides). */
static int fixup(uint8_t *b, uint32_t size, const char *magic)
{
	if (memcmp(b, magic, 4))
		return -E_CORRUPT;
	uint32_t ofs = le16(b + 4), cnt = le16(b + 6);
	if (cnt != size / 512 + 1 || (ofs & 1) || ofs < 8 || ofs + 2 * cnt > size)
		return -E_CORRUPT;
	for (uint32_t i = 1; i < cnt; i++) {
		uint8_t *p = b + i * 512 - 2;
		if (memcmp(p, b + ofs, 2))
			return -E_CORRUPT;
		memcpy(p, b + ofs + 2 * i, 2);
	}
	return 0;
}

/* One raw record. Walking the MFT in order, records are read a window at a time (one read
 * instead of 64); scattered reads (a directory's entries) take one record each, so they do
 * not drag a window along for every record. A window that fails to read is not tried again:
 * its records are read one by one, so a bad sector costs only the records on it. */
static int raw_record(struct ntfs_vol *v, uint64_t recno, uint8_t *buf)
{
	uint32_t per = WIN_BYTES / v->rec_size;
	uint64_t first = recno / per * per;
	bool in_order = recno == v->win_next;
	v->win_next = recno + 1;
	if (v->win && in_order && (!v->win_n || recno < v->win_first || recno >= v->win_first + v->win_n) &&
	    v->win_bad != first + 1) {
		uint64_t n = v->mft_records - first < per ? v->mft_records - first : per;
		v->win_n = 0;
		int rc = runs_read(v, v->mft_runs, v->mft_nruns, first * v->rec_size, (uint32_t)(n * v->rec_size), v->win);
		if (rc == -E_NOMEM)
			return rc;
		if (rc == 0) {
			v->win_first = first;
			v->win_n = (uint32_t)n;
		} else {
			v->win_bad = first + 1;
		}
	}
	if (v->win_n && recno >= v->win_first && recno < v->win_first + v->win_n) {
		memcpy(buf, v->win + (recno - v->win_first) * v->rec_size, v->rec_size);
		return 0;
	}
	return runs_read(v, v->mft_runs, v->mft_nruns, recno * v->rec_size, v->rec_size, buf);
}

int ntfs_read_record(struct ntfs_vol *v, uint64_t recno, uint8_t *buf)
{
	if (recno >= v->mft_records)
		return -E_NOENT;
	int rc = raw_record(v, recno, buf);
	if (rc < 0)
		return rc;
	if ((rc = fixup(buf, v->rec_size, "FILE")) < 0)
		return rc;
	uint32_t first = le16(buf + 20), used = le32(buf + 24);
	if (first < 24 || first >= v->rec_size || used > v->rec_size || used < first + 4)
		return -E_CORRUPT;
	return 0;
}

/* The attribute at *pos of a fixed-up record, checked to lie within it; NULL at the end (or
 * at damage, which *bad reports). */
static const uint8_t *attr_at(const uint8_t *rec, uint32_t *pos, uint32_t *alen, int *bad)
{
	uint32_t used = le32(rec + 24), p = *pos;
	*bad = 0;
	if (p + 4 > used || le32(rec + p) == AT_END)
		return NULL;
	const uint8_t *a = rec + p;
	uint32_t len = p + 16 <= used ? le32(a + 4) : 0;
	if (len < 24 || len > used - p || (len & 7)) {
		*bad = 1;
		return NULL;
	}
	uint32_t nlen = a[9], noff = le16(a + 10);
	if (nlen && noff + 2 * nlen > len)
		goto bad;
	if (a[8]) {
		if (len < 64 || le16(a + 32) >= len)
			goto bad;
	} else if (le16(a + 20) + (uint64_t)le32(a + 16) > len) {
		goto bad;
	}
	*pos = p + len;
	*alen = len;
	return a;
bad:
	*bad = 1;
	return NULL;
}

/* name NULL matches the unnamed attribute only; ANY_NAME matches all. */
static const char any_name[] = "*";
#define ANY_NAME any_name
static bool name_eq(const uint8_t *u16, unsigned n, const char *name)
{
	if (name == ANY_NAME)
		return true;
	if (!name)
		return n == 0;
	if (strlen(name) != n)
		return false;
	for (unsigned i = 0; i < n; i++)
		if (le16(u16 + 2 * i) != (uint8_t)name[i])
			return false;
	return true;
}

typedef int (*attr_fn)(struct ntfs_vol *v, const uint8_t *a, uint32_t alen, void *ctx);

/* The attribute list's value (resident or not) into an allocated buffer. */
static int attr_list_load(struct ntfs_vol *v, const uint8_t *a, uint32_t alen, uint8_t **out, uint32_t *len)
{
	uint64_t size = a[8] ? le64(a + 48) : le32(a + 16);
	if (size > MAX_LIST)
		return -E_CORRUPT;
	uint8_t *buf = v->env->alloc(size ? size : 1);
	if (!buf)
		return -E_NOMEM;
	int rc = 0;
	if (!a[8]) {
		memcpy(buf, a + le16(a + 20), size);
	} else {
		struct runvec rv = { 0 };
		rc = runs_decode(v, a, alen, &rv);
		if (rc == 0)
			rc = runs_read(v, rv.r, rv.n, 0, (uint32_t)size, buf);
		if (rv.r)
			v->env->free(rv.r);
	}
	if (rc < 0) {
		v->env->free(buf);
		return rc;
	}
	*out = buf;
	*len = (uint32_t)size;
	return 0;
}

/* Calls fn for each attribute of type (0: all) and name of base record recno, following its
 * attribute list into extent records (only the base record's list is followed, so a list can
 * never lead into a loop). Records not in use or extents themselves are -E_NOENT. */
static int for_attrs(struct ntfs_vol *v, uint64_t recno, uint32_t type, const char *name, attr_fn fn,
		     void *ctx, uint16_t *rec_flags)
{
	int rc = ntfs_read_record(v, recno, v->rec), bad;
	if (rc < 0)
		return rc;
	if (!(le16(v->rec + 22) & REC_IN_USE) || (le64(v->rec + 32) & REF_MASK))
		return -E_NOENT;
	if (rec_flags)
		*rec_flags = le16(v->rec + 22);
	uint32_t pos = le16(v->rec + 20), alen;
	const uint8_t *a, *list = NULL;
	uint32_t list_len = 0;
	while ((a = attr_at(v->rec, &pos, &alen, &bad)))
		if (le32(a) == AT_ATTR_LIST) {
			list = a;
			list_len = alen;
		}
	if (bad)
		return -E_CORRUPT;
	if (!list || type == AT_ATTR_LIST) {
		pos = le16(v->rec + 20);
		while ((a = attr_at(v->rec, &pos, &alen, &bad)))
			if ((!type || le32(a) == type) && name_eq(a + le16(a + 10), a[9], name))
				if ((rc = fn(v, a, alen, ctx)) != 0)
					return rc;
		return 0;
	}
	uint8_t *l;
	uint32_t ll;
	if ((rc = attr_list_load(v, list, list_len, &l, &ll)) < 0)
		return rc;
	for (uint32_t p = 0; p + 26 <= ll;) {
		const uint8_t *e = l + p;
		uint32_t elen = le16(e + 4), nlen = e[6], noff = e[7];
		if (elen < 26 || elen > ll - p || (nlen && noff + 2 * nlen > elen)) {
			rc = -E_CORRUPT;
			break;
		}
		p += elen;
		uint32_t t = le32(e);
		if ((type && t != type) || !name_eq(e + noff, nlen, name))
			continue;
		uint64_t ref = le64(e + 16) & REF_MASK;
		uint16_t inst = le16(e + 24);
		const uint8_t *rec = v->rec;
		if (ref != recno) {
			rc = ntfs_read_record(v, ref, v->rec2);
			if (rc == 0 && (le64(v->rec2 + 32) & REF_MASK) != recno)
				rc = -E_CORRUPT;   /* an extent that is not ours */
			if (rc < 0) {
				say(v, "record %llu: attribute list entry to record %llu: %s",
				    (unsigned long long)recno, (unsigned long long)ref, err_str(rc));
				rc = 0;
				continue;
			}
			rec = v->rec2;
		}
		pos = le16(rec + 20);
		while ((a = attr_at(rec, &pos, &alen, &bad)))
			if (le32(a) == t && le16(a + 14) == inst)
				break;
		if (!a)
			continue;
		if ((rc = fn(v, a, alen, ctx)) != 0)
			break;
	}
	v->env->free(l);
	return rc;
}

/* ---- names -------------------------------------------------------------------------------- */

/* UTF-16LE (n units) to UTF-8; bad surrogates become U+FFFD. Always NUL-terminates. */
static void utf16_to_utf8(const uint8_t *s, unsigned n, char *out, size_t cap)
{
	size_t o = 0;
	for (unsigned i = 0; i < n; i++) {
		uint32_t c = le16(s + 2 * i);
		if (c >= 0xD800 && c < 0xDC00 && i + 1 < n && le16(s + 2 * i + 2) >= 0xDC00 &&
		    le16(s + 2 * i + 2) < 0xE000) {
			c = 0x10000 + ((c - 0xD800) << 10) + (le16(s + 2 * i + 2) - 0xDC00);
			i++;
		} else if (c >= 0xD800 && c < 0xE000) {
			c = 0xFFFD;
		}
		char b[4];
		size_t k;
		if (c < 0x80) {
			b[0] = (char)c; k = 1;
		} else if (c < 0x800) {
			b[0] = (char)(0xC0 | c >> 6); b[1] = (char)(0x80 | (c & 63)); k = 2;
		} else if (c < 0x10000) {
			b[0] = (char)(0xE0 | c >> 12); b[1] = (char)(0x80 | (c >> 6 & 63));
			b[2] = (char)(0x80 | (c & 63)); k = 3;
		} else {
			b[0] = (char)(0xF0 | c >> 18); b[1] = (char)(0x80 | (c >> 12 & 63));
			b[2] = (char)(0x80 | (c >> 6 & 63)); b[3] = (char)(0x80 | (c & 63)); k = 4;
		}
		if (o + k >= cap)
			break;
		memcpy(out + o, b, k);
		o += k;
	}
	out[o] = 0;
}

struct name_pick { char *name; uint64_t parent; int ns; bool found; };

static int pick_name(struct ntfs_vol *v, const uint8_t *a, uint32_t alen, void *ctx)
{
	(void)v;
	struct name_pick *np = ctx;
	if (a[8])
		return 0;
	const uint8_t *f = a + le16(a + 20);
	uint32_t vlen = le32(a + 16);
	if (vlen < 66 || 66u + 2u * f[64] > vlen || (uint64_t)(f - a) + vlen > alen)
		return 0;
	int ns = f[65];
	/* Win32 or POSIX names beat a DOS 8.3 name. */
	if (np->found && (ns == 2 || np->ns != 2))
		return 0;
	utf16_to_utf8(f + 66, f[64], np->name, NTFS_NAME_MAX);
	np->parent = le64(f) & REF_MASK;
	np->ns = ns;
	np->found = true;
	return 0;
}

static int rec_name(struct ntfs_vol *v, uint64_t recno, char *name, uint64_t *parent)
{
	struct ntfs_name_cache *c = v->cache;
	unsigned slot = (unsigned)(recno % CACHE_N);
	if (c && c->e[slot].valid && c->e[slot].rec == recno) {
		memcpy(name, c->e[slot].name, NTFS_NAME_MAX);
		*parent = c->e[slot].parent;
		return 0;
	}
	struct name_pick np = { name, 0, 0, false };
	int rc = for_attrs(v, recno, AT_FILE_NAME, ANY_NAME, pick_name, &np, NULL);
	if (rc < 0)
		return rc;
	if (!np.found)
		return -E_NOENT;   /* reserved records (12-15) are in use without a name */
	*parent = np.parent;
	if (c) {
		c->e[slot].rec = recno;
		c->e[slot].parent = np.parent;
		c->e[slot].valid = true;
		memcpy(c->e[slot].name, name, NTFS_NAME_MAX);
	}
	return 0;
}

int ntfs_path(struct ntfs_vol *v, uint64_t recno, char *buf, size_t len)
{
	if (len < 2)
		return -E_INVAL;
	char name[NTFS_NAME_MAX];
	size_t at = len - 1;   /* the path grows leftwards from the end of buf */
	buf[at] = 0;
	uint64_t cur = recno;
	for (int depth = 0; cur != NTFS_ROOT; depth++) {
		uint64_t parent;
		if (depth >= MAX_DEPTH)
			return -E_CORRUPT;   /* a loop of parents */
		int rc = rec_name(v, cur, name, &parent);
		if (rc < 0)
			return rc;
		if (parent == cur)
			return -E_CORRUPT;
		size_t n = strlen(name);
		if (n + 1 > at)
			return -E_RANGE;
		at -= n;
		memcpy(buf + at, name, n);
		buf[--at] = '/';
		cur = parent;
	}
	if (at == len - 1)
		buf[--at] = '/';
	memmove(buf, buf + at, len - at);
	return 0;
}

/* ---- stat, runs, data --------------------------------------------------------------------- */

static int stat_attr(struct ntfs_vol *v, const uint8_t *a, uint32_t alen, void *ctx)
{
	(void)v;
	(void)alen;
	struct ntfs_stat *st = ctx;
	uint32_t t = le32(a);
	if (t == AT_STD_INFO && !a[8] && le32(a + 16) >= 32) {
		const uint8_t *s = a + le16(a + 20);
		st->ctime = le64(s);
		st->mtime = le64(s + 8);
		st->atime = le64(s + 24);
	} else if (t == AT_DATA && a[9] == 0) {
		st->attr_flags = le16(a + 12);
		if (!a[8]) {
			st->size = st->alloc = le32(a + 16);
			st->resident = true;
		} else if (le64(a + 16) == 0) {
			st->size = le64(a + 48);
			st->alloc = le64(a + 40);
		}
	}
	return 0;
}

int ntfs_stat(struct ntfs_vol *v, uint64_t recno, struct ntfs_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->mft = recno;
	uint16_t flags = 0;
	int rc = for_attrs(v, recno, 0, ANY_NAME, stat_attr, st, &flags);
	st->dir = (flags & REC_DIR) != 0;
	return rc;
}

struct runs_ctx { struct runvec rv; uint64_t size, init; bool have_size; uint16_t flags; };

static int runs_attr(struct ntfs_vol *v, const uint8_t *a, uint32_t alen, void *ctx)
{
	struct runs_ctx *rc = ctx;
	if (!a[8]) {
		rc->size = rc->init = le32(a + 16);
		rc->have_size = true;
		return 0;
	}
	if (le64(a + 16) == 0) {
		rc->size = le64(a + 48);
		rc->init = le64(a + 56);
		rc->have_size = true;
		rc->flags = le16(a + 12);
	}
	return runs_decode(v, a, alen, &rc->rv);
}

static int attr_runs(struct ntfs_vol *v, uint64_t recno, uint32_t type, const char *name, struct runs_ctx *c)
{
	memset(c, 0, sizeof(*c));
	int rc = for_attrs(v, recno, type, name, runs_attr, c, NULL);
	if (rc == 0 && !c->have_size)
		rc = -E_NOENT;
	if (rc == 0 && c->rv.n) {
		runs_sort(c->rv.r, c->rv.n);
		for (uint32_t i = 1; i < c->rv.n; i++)
			if (c->rv.r[i - 1].vcn + c->rv.r[i - 1].len > c->rv.r[i].vcn)
				rc = -E_CORRUPT;   /* two extents claim the same vcn */
	}
	if (rc == 0 && c->init > c->size)
		c->init = c->size;
	if (rc < 0 && c->rv.r) {
		v->env->free(c->rv.r);
		c->rv.r = NULL;
	}
	return rc;
}

int ntfs_attr_runs(struct ntfs_vol *v, uint64_t recno, uint32_t type, const char *name,
		   struct ntfs_run **runs, uint32_t *nruns, uint64_t *size)
{
	struct runs_ctx c;
	int rc = attr_runs(v, recno, type, name, &c);
	if (rc < 0)
		return rc;
	*runs = c.rv.r;
	*nruns = c.rv.n;
	if (size)
		*size = c.size;
	return 0;
}

struct resident_ctx { uint8_t *buf; uint64_t off; uint32_t len; bool found; };

static int resident_copy(struct ntfs_vol *v, const uint8_t *a, uint32_t alen, void *ctx)
{
	(void)v;
	(void)alen;
	struct resident_ctx *r = ctx;
	if (a[8])
		return 0;
	uint32_t vlen = le32(a + 16);
	r->found = true;
	memset(r->buf, 0, r->len);
	if (r->off < vlen) {
		uint32_t n = vlen - (uint32_t)r->off < r->len ? vlen - (uint32_t)r->off : r->len;
		memcpy(r->buf, a + le16(a + 20) + r->off, n);
	}
	return 1;
}

int ntfs_file_read(struct ntfs_vol *v, uint64_t recno, uint64_t off, uint32_t len, void *buf)
{
	struct runs_ctx c;
	int rc = attr_runs(v, recno, AT_DATA, NULL, &c);
	if (rc < 0)
		return rc;
	if (off > c.size || len > c.size - off) {
		rc = -E_RANGE;
	} else if (c.rv.n && (c.flags & (ATTR_COMPRESSED | ATTR_ENCRYPTED))) {
		rc = -E_UNSUPP;   /* its clusters hold LZNT1 or ciphertext: never hand them out as data */
	} else if (!c.rv.n && c.size) {
		struct resident_ctx r = { buf, off, len, false };
		rc = for_attrs(v, recno, AT_DATA, NULL, resident_copy, &r, NULL);
		rc = rc < 0 ? rc : r.found ? 0 : -E_CORRUPT;
	} else {
		/* Past the initialized size the data is zeros whatever the clusters hold. */
		uint32_t n = off >= c.init ? 0 : c.init - off < len ? (uint32_t)(c.init - off) : len;
		rc = runs_read(v, c.rv.r, c.rv.n, off, n, buf);
		memset((uint8_t *)buf + n, 0, len - n);
	}
	if (c.rv.r)
		v->env->free(c.rv.r);
	return rc;
}

/* ---- directories -------------------------------------------------------------------------- */

struct root_ctx { uint8_t *val; uint32_t len; };

static int root_copy(struct ntfs_vol *v, const uint8_t *a, uint32_t alen, void *ctx)
{
	(void)alen;
	struct root_ctx *r = ctx;
	if (a[8] || r->val)
		return 0;
	r->len = le32(a + 16);
	r->val = v->env->alloc(r->len ? r->len : 1);
	if (!r->val)
		return -E_NOMEM;
	memcpy(r->val, a + le16(a + 20), r->len);
	return 0;
}

/* Walks the entries of one index node (hdr: its index header, room: bytes from hdr). */
static int index_entries(struct ntfs_vol *v, const uint8_t *hdr, uint32_t room, uint64_t dir,
			 int (*fn)(void *ctx, const struct ntfs_dirent *e), void *ctx, struct ntfs_dirent *de)
{
	uint32_t p = le32(hdr), end = le32(hdr + 4);
	if (end > room || p > end)
		return -E_CORRUPT;
	while (p + 16 <= end) {
		const uint8_t *e = hdr + p;
		uint32_t len = le16(e + 8), klen = le16(e + 10), flags = le16(e + 12);
		if (len < 16 || len > end - p || (len & 7))
			return -E_CORRUPT;
		if (flags & 2)
			return 0;
		p += len;
		if (klen < 66 || 16 + klen > len || 66u + 2u * e[16 + 64] > klen)
			return -E_CORRUPT;
		const uint8_t *f = e + 16;
		if (f[65] == 2)
			continue;   /* the DOS twin of a long name */
		uint64_t ref = le64(e) & REF_MASK;
		utf16_to_utf8(f + 66, f[64], de->name, sizeof(de->name));
		int rc = ntfs_stat(v, ref, &de->st);
		if (rc < 0) {
			say(v, "directory %llu: entry %s (record %llu): %s", (unsigned long long)dir, de->name,
			    (unsigned long long)ref, err_str(rc));
			/* The index's own copy of the name's attribute still says what it was. */
			memset(&de->st, 0, sizeof(de->st));
			de->st.mft = ref;
			de->st.ctime = le64(f + 8);
			de->st.mtime = le64(f + 16);
			de->st.atime = le64(f + 32);
			de->st.size = le64(f + 48);
			de->st.dir = (le32(f + 56) & 0x10000000) != 0;
		}
		if ((rc = fn(ctx, de)) != 0)
			return rc;
	}
	return 0;
}

static int dir_list_index(struct ntfs_vol *v, uint64_t dir, int (*fn)(void *ctx, const struct ntfs_dirent *e),
			  void *ctx)
{
	struct root_ctx root = { 0 };
	struct runs_ctx alloc = { 0 }, bits = { 0 };
	uint8_t *blk = NULL, *bm = NULL;
	struct ntfs_dirent *de = v->env->alloc(sizeof(*de));
	if (!de)
		return -E_NOMEM;
	uint16_t flags = 0;
	int rc = for_attrs(v, dir, AT_INDEX_ROOT, "$I30", root_copy, &root, &flags);
	if (rc == 0 && !(flags & REC_DIR))
		rc = -E_INVAL;
	if (rc == 0 && (!root.val || root.len < 32))
		rc = -E_CORRUPT;
	if (rc < 0)
		goto out;
	/* Every node of the B+ tree holds distinct entries, so reading the root and then every
	 * in-use block in order lists the directory without following (possibly looping) links. */
	rc = index_entries(v, root.val + 16, root.len - 16, dir, fn, ctx, de);
	if (rc != 0)
		goto out;
	rc = attr_runs(v, dir, AT_INDEX_ALLOC, "$I30", &alloc);
	if (rc == -E_NOENT) {
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	uint64_t nblk = alloc.size / v->idx_size;
	if (nblk > v->clusters * (uint64_t)v->cluster / v->idx_size) {
		rc = -E_CORRUPT;
		goto out;
	}
	/* The allocation's bitmap says which blocks are in use; stale blocks hold old entries. */
	rc = attr_runs(v, dir, AT_BITMAP, "$I30", &bits);
	if (rc == 0 && bits.size < (nblk + 7) / 8)
		rc = -E_CORRUPT;
	if (rc < 0)
		goto out;
	uint32_t bmlen = (uint32_t)((nblk + 7) / 8);
	bm = v->env->alloc(bmlen ? bmlen : 1);
	blk = v->env->alloc(v->idx_size);
	if (!bm || !blk) {
		rc = -E_NOMEM;
		goto out;
	}
	if (bits.rv.n) {
		rc = runs_read(v, bits.rv.r, bits.rv.n, 0, bmlen, bm);
	} else {
		struct resident_ctx r = { bm, 0, bmlen, false };
		rc = for_attrs(v, dir, AT_BITMAP, "$I30", resident_copy, &r, NULL);
		rc = rc < 0 ? rc : r.found ? 0 : -E_CORRUPT;
	}
	if (rc < 0)
		goto out;
	for (uint64_t b = 0; b < nblk; b++) {
		if (!(bm[b / 8] & (1u << (b % 8))))
			continue;
		rc = runs_read(v, alloc.rv.r, alloc.rv.n, b * v->idx_size, v->idx_size, blk);
		if (rc == 0)
			rc = fixup(blk, v->idx_size, "INDX");
		if (rc == 0)
			rc = index_entries(v, blk + 24, v->idx_size - 24, dir, fn, ctx, de);
		if (rc == -E_NOMEM || rc > 0)
			goto out;
		if (rc < 0) {
			say(v, "directory %llu: index block %llu: %s", (unsigned long long)dir,
			    (unsigned long long)b, err_str(rc));
			rc = 0;
		}
	}
out:
	v->env->free(de);
	if (root.val)
		v->env->free(root.val);
	if (alloc.rv.r)
		v->env->free(alloc.rv.r);
	if (bits.rv.r)
		v->env->free(bits.rv.r);
	if (bm)
		v->env->free(bm);
	if (blk)
		v->env->free(blk);
	return rc;
}

/* The next code point of UTF-8 text (s[*i..n)); malformed bytes are U+FFFD. */
static uint32_t u8_get(const char *s, size_t n, size_t *i)
{
	uint8_t c = (uint8_t)s[(*i)++];
	uint32_t cp;
	int k;
	if (c < 0x80)
		return c;
	if ((c & 0xE0) == 0xC0) {
		cp = c & 0x1F; k = 1;
	} else if ((c & 0xF0) == 0xE0) {
		cp = c & 0x0F; k = 2;
	} else if ((c & 0xF8) == 0xF0) {
		cp = c & 0x07; k = 3;
	} else {
		return 0xFFFD;
	}
	for (; k && *i < n && ((uint8_t)s[*i] & 0xC0) == 0x80; k--)
		cp = cp << 6 | ((uint8_t)s[(*i)++] & 0x3F);
	return k ? 0xFFFD : cp;
}

/* Upper case as Windows compares names: the volume's $UpCase table, else ASCII. */
static uint32_t upc(const uint16_t *up, uint32_t c)
{
	if (up && c < 0x10000)
		return up[c];
	return c >= 'a' && c <= 'z' ? c - 32 : c;
}

static bool name_ieq(const uint16_t *up, const char *a, const char *b, size_t bn)
{
	size_t an = strlen(a), i = 0, j = 0;
	while (i < an && j < bn)
		if (upc(up, u8_get(a, an, &i)) != upc(up, u8_get(b, bn, &j)))
			return false;
	return i == an && j == bn;
}

struct find_ctx { const char *name; size_t len; uint64_t rec; bool dir; const uint16_t *up; };

static int find_entry(void *ctx, const struct ntfs_dirent *e)
{
	struct find_ctx *f = ctx;
	if (!name_ieq(f->up, e->name, f->name, f->len))
		return 0;
	f->rec = e->st.mft;
	f->dir = e->st.dir;
	return 1;
}

struct mft_find { struct find_ctx *f; uint64_t dir; bool found; };

static int name_in_dir(struct ntfs_vol *v, const uint8_t *a, uint32_t alen, void *ctx)
{
	(void)alen;
	struct mft_find *m = ctx;
	if (a[8])
		return 0;
	const uint8_t *fn = a + le16(a + 20);
	uint32_t vlen = le32(a + 16);
	if (vlen < 66 || 66u + 2u * fn[64] > vlen || fn[65] == 2 || (le64(fn) & REF_MASK) != m->dir)
		return 0;
	char name[NTFS_NAME_MAX];
	utf16_to_utf8(fn + 66, fn[64], name, sizeof(name));
	m->found = name_ieq(v->upcase, name, m->f->name, m->f->len);
	return m->found ? 1 : 0;
}

/* When a directory's index is damaged, its entries are still in the MFT: a record whose name
 * has that directory as parent (one pass over the MFT, only after the index failed). */
static int lookup_by_mft(struct ntfs_vol *v, uint64_t dir, struct find_ctx *f)
{
	uint8_t *rec = v->env->alloc(v->rec_size);
	if (!rec)
		return -E_NOMEM;
	int rc = 0;
	for (uint64_t r = 0; r < v->mft_records && rc == 0; r++) {
		if (r == dir || ntfs_read_record(v, r, rec) < 0)
			continue;
		uint16_t flags = le16(rec + 22);
		if (!(flags & REC_IN_USE) || (le64(rec + 32) & REF_MASK))
			continue;
		struct mft_find m = { f, dir, false };
		if (for_attrs(v, r, AT_FILE_NAME, ANY_NAME, name_in_dir, &m, NULL) >= 0 && m.found) {
			f->rec = r;
			f->dir = (flags & REC_DIR) != 0;
			rc = 1;
		}
	}
	v->env->free(rec);
	return rc;
}

struct seen { struct ntfs_vol *v; struct runvec rv; };   /* records as vcn, to reuse runs_sort */

static int collect_seen(void *ctx, const struct ntfs_dirent *e)
{
	struct seen *s = ctx;
	return runvec_push(s->v, &s->rv, e->st.mft, 0, 1);
}

struct mft_name { uint64_t dir; char *name; int ns; bool found; };

static int name_with_parent(struct ntfs_vol *v, const uint8_t *a, uint32_t alen, void *ctx)
{
	(void)v;
	(void)alen;
	struct mft_name *m = ctx;
	const uint8_t *fn = a + le16(a + 20);
	uint32_t vlen = le32(a + 16);
	if (a[8] || vlen < 66 || 66u + 2u * fn[64] > vlen || (le64(fn) & REF_MASK) != m->dir)
		return 0;
	if (m->found && (fn[65] == 2 || m->ns != 2))
		return 0;
	utf16_to_utf8(fn + 66, fn[64], m->name, NTFS_NAME_MAX);
	m->ns = fn[65];
	m->found = true;
	return 0;
}

/* After damage in a directory's index, the entries it lost: MFT records named in that
 * directory that the readable part of the index did not give. */
static int list_from_mft(struct ntfs_vol *v, uint64_t dir, int (*fn)(void *ctx, const struct ntfs_dirent *e),
			 void *ctx)
{
	struct seen sn = { v, { 0 } };
	struct runvec *seen = &sn.rv;
	ntfs_say_fn quiet = v->say;
	uint64_t damaged = v->damaged;
	v->say = NULL;   /* the damage was said by the listing itself */
	int rc = dir_list_index(v, dir, collect_seen, &sn);
	v->say = quiet;
	v->damaged = damaged;
	if (rc == -E_NOMEM)
		goto out;
	runs_sort(seen->r, seen->n);
	uint8_t *rec = v->env->alloc(v->rec_size);
	struct ntfs_dirent *de = v->env->alloc(sizeof(*de));
	rc = rec && de ? 0 : -E_NOMEM;
	for (uint64_t r = 0; r < v->mft_records && rc == 0; r++) {
		if (r == dir || ntfs_read_record(v, r, rec) < 0)
			continue;
		if (!(le16(rec + 22) & REC_IN_USE) || (le64(rec + 32) & REF_MASK))
			continue;
		uint32_t lo = 0, hi = seen->n;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (seen->r[mid].vcn < r)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < seen->n && seen->r[lo].vcn == r)
			continue;
		struct mft_name m = { dir, de->name, 0, false };
		if (for_attrs(v, r, AT_FILE_NAME, ANY_NAME, name_with_parent, &m, NULL) < 0 || !m.found)
			continue;
		if (ntfs_stat(v, r, &de->st) < 0)
			continue;
		rc = fn(ctx, de);
	}
	if (rec)
		v->env->free(rec);
	if (de)
		v->env->free(de);
out:
	if (seen->r)
		v->env->free(seen->r);
	return rc;
}

int ntfs_dir_list(struct ntfs_vol *v, uint64_t dir, int (*fn)(void *ctx, const struct ntfs_dirent *e),
		  void *ctx)
{
	uint64_t damaged = v->damaged;
	int rc = dir_list_index(v, dir, fn, ctx);
	if (rc == 0 && v->damaged != damaged)
		rc = list_from_mft(v, dir, fn, ctx);
	return rc;
}

int ntfs_lookup(struct ntfs_vol *v, const char *path, uint64_t *recno)
{
	uint64_t cur = NTFS_ROOT;
	bool dir = true;
	const char *p = path;
	while (*p) {
		while (*p == '/' || *p == '\\')
			p++;
		if (!*p)
			break;
		size_t n = 0;
		while (p[n] && p[n] != '/' && p[n] != '\\')
			n++;
		if (!dir)
			return -E_NOENT;
		struct find_ctx f = { p, n, 0, false, v->upcase };
		int rc = ntfs_dir_list(v, cur, find_entry, &f);
		/* (a damaged index was already completed from the MFT by the listing) */
		if (rc < 0 && rc != -E_NOMEM && rc != -E_INVAL) {
			int rc2 = lookup_by_mft(v, cur, &f);
			rc = rc2 != 0 ? rc2 : rc;
		}
		if (rc < 0)
			return rc;
		if (rc == 0)
			return -E_NOENT;
		cur = f.rec;
		dir = f.dir;
		p += n;
	}
	*recno = cur;
	return 0;
}

/* ---- glob, walk, domain ------------------------------------------------------------------- */

/* '*' and '?' within one component, by code point; iterative with one backtrack point. */
static bool comp_match(const uint16_t *up, const char *p, size_t pn, const char *s, size_t sn)
{
	size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;
	while (si < sn) {
		if (pi < pn && p[pi] == '*') {
			star = ++pi;
			mark = si;
			continue;
		}
		if (pi < pn) {
			size_t pj = pi, sj = si;
			uint32_t pc = u8_get(p, pn, &pj), sc = u8_get(s, sn, &sj);
			if (pc == '?' || upc(up, pc) == upc(up, sc)) {
				pi = pj;
				si = sj;
				continue;
			}
		}
		if (star == (size_t)-1)
			return false;
		/* The last '*' takes one more character. */
		pi = star;
		u8_get(s, sn, &mark);
		si = mark;
	}
	while (pi < pn && p[pi] == '*')
		pi++;
	return pi == pn;
}

static int glob_match(const uint16_t *up, const char *pattern, const char *path)
{
	if (!strchr(pattern, '/')) {
		const char *base = path;
		for (const char *s = path; *s; s++)
			if (*s == '/')
				base = s + 1;
		return comp_match(up, pattern, strlen(pattern), base, strlen(base));
	}
	const char *p = pattern, *s = path;
	for (;;) {
		while (*p == '/')
			p++;
		while (*s == '/')
			s++;
		if (!*p || !*s)
			return !*p && !*s;
		size_t pn = 0, sn = 0;
		while (p[pn] && p[pn] != '/')
			pn++;
		while (s[sn] && s[sn] != '/')
			sn++;
		if (!comp_match(up, p, pn, s, sn))
			return 0;
		p += pn;
		s += sn;
	}
}

int ntfs_glob_match(const char *pattern, const char *path)
{
	return glob_match(NULL, pattern, path);
}

/* Files (their $DATA runs) or directories (their index's runs), in MFT order. */
static int walk(struct ntfs_vol *v, const char *glob, bool dirs, int (*fn)(void *ctx, const struct ntfs_file *f),
		void *ctx)
{
	uint8_t *rec = v->env->alloc(v->rec_size);
	char *path = v->env->alloc(NTFS_PATH_MAX);
	char *name = v->env->alloc(NTFS_NAME_MAX);
	int rc = 0;
	if (!rec || !path || !name) {
		rc = -E_NOMEM;
		goto out;
	}
	bool by_name = glob && !strchr(glob, '/');
	for (uint64_t r = 0; r < v->mft_records && rc == 0; r++) {
		rc = ntfs_read_record(v, r, rec);
		if (rc < 0) {
			bool blank = true;   /* never-used records may be zeros */
			for (uint32_t i = 0; i < 4 && blank; i++)
				blank = rec[i] == 0;
			if (rc != -E_CORRUPT || !blank)
				say(v, "MFT record %llu: %s", (unsigned long long)r, err_str(rc));
			rc = rc == -E_NOMEM ? rc : 0;
			continue;
		}
		uint16_t flags = le16(rec + 22);
		if (!(flags & REC_IN_USE) || !(flags & REC_DIR) != !dirs || (le64(rec + 32) & REF_MASK))
			continue;
		if (by_name) {
			uint64_t parent;
			rc = rec_name(v, r, name, &parent);
			if (rc == 0 && !glob_match(v->upcase, glob, name))
				continue;
		}
		if (rc == 0)
			rc = ntfs_path(v, r, path, NTFS_PATH_MAX);
		if (rc == 0 && glob && !by_name && !glob_match(v->upcase, glob, path))
			continue;
		struct ntfs_file f = { path, { 0 }, NULL, 0 };
		struct runs_ctx c = { 0 };
		if (rc == 0)
			rc = ntfs_stat(v, r, &f.st);
		if (rc == 0) {
			rc = dirs ? attr_runs(v, r, AT_INDEX_ALLOC, "$I30", &c) : attr_runs(v, r, AT_DATA, NULL, &c);
			if (rc == -E_NOENT)
				rc = 0;   /* no unnamed data ($Secure, $Extend's files), a small directory */
		}
		if (rc == -E_NOENT && r < 16) {
			rc = 0;   /* a reserved system record: no name, nothing to find */
			continue;
		}
		if (rc < 0) {
			say(v, "MFT record %llu: %s", (unsigned long long)r, err_str(rc));
			rc = rc == -E_NOMEM ? rc : 0;
			continue;
		}
		f.runs = c.rv.r;
		f.nruns = c.rv.n;
		rc = fn(ctx, &f);
		if (c.rv.r)
			v->env->free(c.rv.r);
	}
out:
	if (rec)
		v->env->free(rec);
	if (path)
		v->env->free(path);
	if (name)
		v->env->free(name);
	return rc;
}

int ntfs_walk(struct ntfs_vol *v, const char *glob, int (*fn)(void *ctx, const struct ntfs_file *f), void *ctx)
{
	return walk(v, glob, false, fn, ctx);
}

int ntfs_walk_dirs(struct ntfs_vol *v, int (*fn)(void *ctx, const struct ntfs_file *f), void *ctx)
{
	return walk(v, NULL, true, fn, ctx);
}

static int emit_runs(struct ntfs_vol *v, int group, const struct ntfs_run *r, uint32_t n, ntfs_emit_fn emit,
		     void *ctx)
{
	for (uint32_t i = 0; i < n; i++) {
		if (r[i].lcn == NTFS_SPARSE)
			continue;
		int rc = emit(ctx, group, v->base + r[i].lcn * v->cluster, r[i].len * v->cluster);
		if (rc)
			return rc;
	}
	return 0;
}

/* Emits an attribute's runs, saying (not failing) when it is damaged. */
static int emit_attr(struct ntfs_vol *v, int group, uint64_t recno, uint32_t type, const char *name,
		     ntfs_emit_fn emit, void *ctx)
{
	struct runs_ctx c;
	int rc = attr_runs(v, recno, type, name, &c);
	if (rc == -E_NOENT)
		return 0;
	if (rc < 0) {
		say(v, "MFT record %llu: attribute 0x%x: %s", (unsigned long long)recno, type, err_str(rc));
		return rc == -E_NOMEM ? rc : 0;
	}
	rc = emit_runs(v, group, c.rv.r, c.rv.n, emit, ctx);
	if (c.rv.r)
		v->env->free(c.rv.r);
	return rc;
}

struct data_emit { struct ntfs_vol *v; ntfs_emit_fn emit; void *ctx; };

static int data_emit(void *ctx, const struct ntfs_file *f)
{
	struct data_emit *d = ctx;
	return emit_runs(d->v, NTFS_G_DATA, f->runs, f->nruns, d->emit, d->ctx);
}

int ntfs_used(struct ntfs_vol *v, ntfs_emit_fn emit, void *ctx)
{
	struct runs_ctx c;
	int rc = attr_runs(v, 6, AT_DATA, NULL, &c);   /* record 6 is $Bitmap */
	if (rc < 0)
		return rc;
	if (c.size < (v->clusters + 7) / 8) {
		rc = -E_CORRUPT;
		goto out;
	}
	uint8_t buf[4096];
	uint64_t start = 0, run = 0;
	for (uint64_t cl = 0; cl < v->clusters && rc == 0; cl += 8 * sizeof(buf)) {
		uint64_t bytes = (v->clusters - cl + 7) / 8;
		uint32_t n = bytes < sizeof(buf) ? (uint32_t)bytes : sizeof(buf);
		if ((rc = runs_read(v, c.rv.r, c.rv.n, cl / 8, n, buf)) < 0)
			break;
		for (uint64_t i = 0; i < 8ull * n && cl + i < v->clusters && rc == 0; i++) {
			if (buf[i / 8] & (1u << (i % 8))) {
				if (!run)
					start = cl + i;
				run++;
			} else if (run) {
				rc = emit(ctx, NTFS_G_USED, v->base + start * v->cluster, run * v->cluster);
				run = 0;
			}
		}
	}
	if (rc == 0 && run)
		rc = emit(ctx, NTFS_G_USED, v->base + start * v->cluster, run * v->cluster);
out:
	if (c.rv.r)
		v->env->free(c.rv.r);
	return rc;
}

/* The metadata one record needs: its non-resident attribute list, and a directory's index. */
static int emit_record_meta(struct ntfs_vol *v, uint64_t r, uint8_t *rec, ntfs_emit_fn emit, void *ctx)
{
	if (ntfs_read_record(v, r, rec) < 0)
		return 0;   /* said by the walk */
	uint16_t flags = le16(rec + 22);
	if (!(flags & REC_IN_USE) || (le64(rec + 32) & REF_MASK))
		return 0;
	uint32_t pos = le16(rec + 20), alen;
	int bad, rc = 0;
	const uint8_t *a;
	while ((a = attr_at(rec, &pos, &alen, &bad)) && rc == 0)
		if (le32(a) == AT_ATTR_LIST && a[8]) {
			struct runvec rv = { 0 };
			if (runs_decode(v, a, alen, &rv) == 0)
				rc = emit_runs(v, NTFS_G_INDEX, rv.r, rv.n, emit, ctx);
			if (rv.r)
				v->env->free(rv.r);
		}
	if (rc == 0 && (flags & REC_DIR))
		rc = emit_attr(v, NTFS_G_INDEX, r, AT_INDEX_ALLOC, "$I30", emit, ctx);
	return rc;
}

/* A sorted set of record numbers: the matching files and their ancestors. */
struct recset { struct ntfs_vol *v; uint64_t *r; uint64_t n, cap; };

static int recset_add(struct recset *s, uint64_t rec)
{
	uint64_t lo = 0, hi = s->n;
	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;
		if (s->r[mid] < rec)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < s->n && s->r[lo] == rec)
		return 0;
	if (s->n == s->cap) {
		/* Distinct records: never more than the MFT holds. */
		uint64_t max = s->v->mft_records + 1, cap = s->cap ? 2 * s->cap : 64;
		if (cap > max)
			cap = max;
		if (cap <= s->n)
			return -E_CORRUPT;
		uint64_t *r = s->v->env->alloc(cap * sizeof(*r));
		if (!r)
			return -E_NOMEM;
		if (s->n)
			memcpy(r, s->r, s->n * sizeof(*r));
		if (s->r)
			s->v->env->free(s->r);
		s->r = r;
		s->cap = cap;
	}
	memmove(s->r + lo + 1, s->r + lo, (s->n - lo) * sizeof(*s->r));
	s->r[lo] = rec;
	s->n++;
	return 0;
}

static int collect_match(void *ctx, const struct ntfs_file *f)
{
	struct recset *s = ctx;
	char name[NTFS_NAME_MAX];
	int rc = recset_add(s, f->st.mft);
	uint64_t cur = f->st.mft, parent;
	/* Its directories up to the root (the walk has just found this chain, so it ends). */
	for (int depth = 0; rc == 0 && cur != NTFS_ROOT && depth < MAX_DEPTH; depth++) {
		if (rec_name(s->v, cur, name, &parent) < 0 || parent == cur)
			break;
		rc = recset_add(s, parent);
		cur = parent;
	}
	return rc;
}

int ntfs_domain(struct ntfs_vol *v, const char *glob, ntfs_emit_fn emit, void *ctx)
{
	int rc = emit(ctx, NTFS_G_BOOT, v->base, v->sector);
	uint64_t backup = (v->sectors - 1) * v->sector;
	if (rc == 0 && (!v->limit || backup + v->sector <= v->limit))
		rc = emit(ctx, NTFS_G_BOOT, v->base + backup, v->sector);
	if (rc == 0)
		rc = emit_runs(v, NTFS_G_MFT, v->mft_runs, v->mft_nruns, emit, ctx);
	if (rc == 0)
		rc = emit_attr(v, NTFS_G_MFT, 0, AT_BITMAP, NULL, emit, ctx);
	if (rc == 0)
		rc = emit_attr(v, NTFS_G_MFT, 1, AT_DATA, NULL, emit, ctx);
	uint8_t *rec = v->env->alloc(v->rec_size);
	if (!rec)
		return -E_NOMEM;
	/* Directory indexes and non-resident attribute lists: what finding files takes. With a
	 * glob, only those of the matching files and the directories above them. */
	if (!glob) {
		for (uint64_t r = 0; r < v->mft_records && rc == 0; r++)
			rc = emit_record_meta(v, r, rec, emit, ctx);
	} else if (rc == 0) {
		struct recset set = { v, NULL, 0, 0 };
		rc = recset_add(&set, NTFS_ROOT);
		if (rc == 0)
			rc = ntfs_walk(v, glob, collect_match, &set);
		for (uint64_t i = 0; i < set.n && rc == 0; i++)
			rc = emit_record_meta(v, set.r[i], rec, emit, ctx);
		if (set.r)
			v->env->free(set.r);
	}
	v->env->free(rec);
	struct data_emit d = { v, emit, ctx };
	if (rc == 0)
		rc = ntfs_walk(v, glob, data_emit, &d);
	if (rc == 0 && !glob)
		rc = ntfs_used(v, emit, ctx);
	return rc;
}

/* $UpCase (record 10): 64 Ki UTF-16 units. Without it names fold as ASCII (said). */
static void upcase_load(struct ntfs_vol *v)
{
	struct ntfs_stat st;
	uint16_t *up = v->env->alloc(UPCASE_BYTES);
	int rc = up ? ntfs_stat(v, 10, &st) : -E_NOMEM;
	if (rc == 0 && st.size != UPCASE_BYTES)
		rc = -E_CORRUPT;
	if (rc == 0)
		rc = ntfs_file_read(v, 10, 0, UPCASE_BYTES, up);
	if (rc < 0) {
		say(v, "$UpCase: %s: names compare as ASCII", err_str(rc));
		if (up)
			v->env->free(up);
		return;
	}
	for (uint32_t i = 0; i < UPCASE_BYTES / 2; i++)
		up[i] = le16((const uint8_t *)&up[i]);
	v->upcase = up;
}

/* ---- open --------------------------------------------------------------------------------- */

struct geom { uint32_t sector, cluster, rec, idx; uint64_t sectors, mft, mirr; };

/* Sizes in the boot sector: a positive count of clusters, or -log2 of the bytes. */
static uint32_t clusters_or_shift(int8_t x, uint32_t cluster)
{
	if (x > 0)
		return (uint32_t)x * cluster;
	if (x < -31 || x > -9)
		return 0;
	return 1u << -x;
}

static int boot_parse(const uint8_t *b, struct geom *g)
{
	if (memcmp(b + 3, "NTFS    ", 8) || b[510] != 0x55 || b[511] != 0xAA)
		return -E_FOREIGN;
	g->sector = le16(b + 11);
	uint32_t spc = b[13];
	if (spc > 0x80)   /* big clusters are stored as a negative shift */
		spc = spc < 0xF4 ? 0 : 1u << (256 - spc);
	if (g->sector < 256 || g->sector > 4096 || (g->sector & (g->sector - 1)) || !spc || (spc & (spc - 1)))
		return -E_CORRUPT;
	g->cluster = g->sector * spc;
	if (g->cluster > (1u << 21))
		return -E_CORRUPT;
	g->sectors = le64(b + 40) + 1;
	g->mft = le64(b + 48);
	g->mirr = le64(b + 56);
	g->rec = clusters_or_shift((int8_t)b[64], g->cluster);
	g->idx = clusters_or_shift((int8_t)b[68], g->cluster);
	uint64_t clusters = (g->sectors - 1) / spc;
	if (g->sectors < 16 || g->sectors >> 48 || g->rec < 512 || g->rec > 65536 || (g->rec & (g->rec - 1)) ||
	    g->idx < 512 || g->idx > 65536 || (g->idx & (g->idx - 1)) || g->mft >= clusters || g->mirr >= clusters)
		return -E_CORRUPT;
	return 0;
}

int ntfs_probe(const uint8_t *boot)
{
	struct geom g;
	return boot_parse(boot, &g) == 0;
}

int ntfs_open(struct ntfs_vol *v, const struct cow_env *env, ntfs_read_fn read, void *ctx,
	      uint64_t base, uint64_t limit)
{
	memset(v, 0, sizeof(*v));
	v->env = env;
	v->read = read;
	v->ctx = ctx;
	v->base = base;
	v->limit = limit;
	uint8_t b[512];
	struct geom g;
	int rc = read(ctx, base, sizeof(b), b);
	if (rc == 0)
		rc = boot_parse(b, &g);
	if (rc < 0 && limit >= 1024) {
		/* The backup sits in the volume's last sector; the partition's end is all we know,
		 * so try its last 512-byte and 4096-byte sectors. */
		for (uint32_t back = 512; back <= 4096 && rc < 0; back *= 8)
			if (read(ctx, base + limit - back, sizeof(b), b) == 0 && boot_parse(b, &g) == 0) {
				rc = 0;
				v->used_backup_boot = true;
			}
	}
	if (rc < 0)
		return rc;
	v->sector = g.sector;
	v->cluster = g.cluster;
	v->rec_size = g.rec;
	v->idx_size = g.idx;
	v->sectors = g.sectors;
	v->clusters = (g.sectors - 1) * g.sector / g.cluster;   /* the backup boot sector is outside */
	v->mft_lcn = g.mft;
	v->mftmirr_lcn = g.mirr;
	if (limit && g.sectors * g.sector > limit + g.sector)
		return -E_RANGE;   /* the volume says it is larger than its partition */
	v->rec = env->alloc(v->rec_size);
	v->rec2 = env->alloc(v->rec_size);
	v->cache = env->alloc(sizeof(*v->cache));
	if (!v->rec || !v->rec2 || !v->cache) {
		rc = -E_NOMEM;
		goto fail;
	}
	memset(v->cache, 0, sizeof(*v->cache));
	/* Bootstrap: record 0 lies at the start of the MFT; its own runs then find the rest. */
	struct ntfs_run first = { 0, v->mft_lcn, (v->rec_size + v->cluster - 1) / v->cluster };
	if (first.lcn + first.len > v->clusters) {
		rc = -E_RANGE;
		goto fail;
	}
	v->mft_runs = &first;
	v->mft_nruns = 1;
	v->mft_records = 1;
	struct runs_ctx c = { 0 };
	rc = ntfs_read_record(v, 0, v->rec);
	if (rc == 0) {
		/* The base record's own $DATA first (enough to read its extent records)... */
		uint32_t pos = le16(v->rec + 20), alen;
		int bad;
		const uint8_t *a;
		while ((a = attr_at(v->rec, &pos, &alen, &bad)) && rc == 0)
			if (le32(a) == AT_DATA && a[8] && a[9] == 0) {
				if (le64(a + 16) == 0) {
					c.size = le64(a + 48);
					c.init = le64(a + 56);
					c.have_size = true;
				}
				rc = runs_decode(v, a, alen, &c.rv);
			}
		if (rc == 0 && (bad || !c.have_size || !c.rv.n))
			rc = -E_CORRUPT;
	}
	if (rc < 0)
		goto fail_runs;
	runs_sort(c.rv.r, c.rv.n);
	v->mft_runs = c.rv.r;
	v->mft_nruns = c.rv.n;
	uint64_t bytes = c.init < c.size ? c.init : c.size;
	if (bytes > v->clusters * (uint64_t)v->cluster) {
		rc = -E_CORRUPT;
		goto fail;
	}
	v->mft_records = bytes / v->rec_size;
	/* ...then the whole runlist across its attribute list, if it has one. */
	struct runs_ctx all;
	rc = attr_runs(v, 0, AT_DATA, NULL, &all);
	if (rc < 0)
		goto fail;
	v->env->free(v->mft_runs);
	v->mft_runs = all.rv.r;
	v->mft_nruns = all.rv.n;
	bytes = all.init < all.size ? all.init : all.size;
	if (!all.rv.n || bytes > v->clusters * (uint64_t)v->cluster) {
		rc = -E_CORRUPT;
		goto fail;
	}
	v->mft_records = bytes / v->rec_size;
	/* Only now: during the bootstrap the runs were still changing. */
	v->win = env->alloc(WIN_BYTES);
	if (!v->win) {
		rc = -E_NOMEM;
		goto fail;
	}
	upcase_load(v);
	return 0;
fail_runs:
	if (c.rv.r)
		env->free(c.rv.r);
	v->mft_runs = NULL;
fail:
	ntfs_close(v);
	return rc;
}

void ntfs_close(struct ntfs_vol *v)
{
	if (v->mft_runs && v->mft_nruns && v->env)
		v->env->free(v->mft_runs);
	if (v->rec)
		v->env->free(v->rec);
	if (v->rec2)
		v->env->free(v->rec2);
	if (v->cache)
		v->env->free(v->cache);
	if (v->win)
		v->env->free(v->win);
	if (v->upcase)
		v->env->free(v->upcase);
	v->win = NULL;
	v->upcase = NULL;
	v->mft_runs = NULL;
	v->rec = v->rec2 = NULL;
	v->cache = NULL;
}
