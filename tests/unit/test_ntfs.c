/* fs/ntfs.c and fs/parttab.c against volumes made by ntfs-3g (mkntfs, a FUSE mount, ntfsls,
 * ntfscat, ntfsinfo), then against the same volumes damaged on purpose. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../lib/check.h"
#include "../lib/shell.h"
#include "../../lib/errors.h"
#include "../../fs/ntfs.h"
#include "../../fs/parttab.h"

static char dir[256], root[1024];   /* root: the repository (tests run from there) */
static void *xalloc(size_t n) { return malloc(n); }
static const struct cow_env env = { xalloc, free, NULL, NULL };

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(n ? (size_t)n : 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

/* A disk in memory; reads of [bad_lo, bad_hi) fail as a bad sector would. */
struct memdisk { uint8_t *p; uint64_t size, bad_lo, bad_hi; uint64_t reads; };

static int mem_read(void *ctx, uint64_t off, uint32_t len, void *buf)
{
	struct memdisk *d = ctx;
	d->reads++;
	if (off > d->size || len > d->size - off)
		return -E_RANGE;
	if (off < d->bad_hi && off + len > d->bad_lo)
		return -E_MEDIUM;
	memcpy(buf, d->p + off, len);
	return 0;
}

static uint64_t seed = 0x1234567;
static uint8_t rnd8(void)
{
	seed = seed * 6364136223846793005ull + 1442695040888963407ull;
	return (uint8_t)(seed >> 56);
}

static int write_file(const char *rel, size_t size)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/src/%s", dir, rel);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	for (size_t i = 0; i < size; i++)
		fputc(rnd8(), f);
	return fclose(f);
}

#define LONGNAME "this_is_a_rather_long_file_name_that_goes_on_and_on_to_check_names_of_many_utf16_units_" \
	"in_directory_index_entries_and_file_name_attributes_without_truncation_anywhere_0123456789.txt"
#define UMLAUT "\xc3\x84rger.txt"   /* "Ärger.txt": folds only through $UpCase */
#define UNINAME "Gr\xc3\xbc\xc3\x9f" "e_\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e_\xf0\x9f\x98\x80.txt"

/* Host copies under DIR/src, copied into a fresh volume through an ntfs-3g mount. */
static int build_volume(const char *img, const char *mkopts)
{
	if (sh("cd %s && rm -rf src && mkdir -p src/Users/alice/Documents src/Users/bob/Documents "
	       "src/Users/bob/Pictures src/many src/links", dir))
		return -1;
	int rc = write_file("small.txt", 11) | write_file("mid.bin", 300000) | write_file("big.bin", 3 << 20) |
		 write_file("Users/alice/Documents/report.docx", 5000) |
		 write_file("Users/bob/Documents/photo.jpg", 70000) |
		 write_file("Users/bob/Pictures/Holiday.JPG", 9000) |
		 write_file("Users/bob/Pictures/notes.txt", 100) | write_file(LONGNAME, 777) |
		 write_file(UNINAME, 4321) | write_file("links/target.txt", 2000) | write_file("frag.bin", 3 << 20) |
		 write_file("piece", 8192) | write_file(UMLAUT, 10);
	for (int i = 0; i < 300 && rc == 0; i++) {
		char n[64];
		snprintf(n, sizeof(n), "many/file_%03d.txt", i);
		rc = write_file(n, 10 + i);
	}
	if (rc)
		return -1;
	/* The sparse file: 8 MiB with one written piece; the host copy is made the same way. */
	if (sh("cd %s/src && truncate -s 8M sparse.bin && dd if=piece of=sparse.bin bs=4096 seek=1000 conv=notrunc "
	       "status=none", dir))
		return -1;
	if (sh("cd %s && rm -f %s && truncate -s 96M %s && mkntfs -F -Q -q %s %s >/dev/null 2>&1 && mkdir -p mnt && "
	       "ntfs-3g %s mnt", dir, img, img, mkopts, img, img))
		return -1;
	/* Hard links with long names overflow the record: its FILE_NAMEs go through an
	 * attribute list. frag.bin is made fragmented by allocating it (ntfsfallocate, unmounted)
	 * in 256 KiB pieces alternating with another file's, then written through the mount. */
	rc = sh("cd %s && cp -r src/Users src/many src/links mnt/ && "
		"cp src/small.txt src/mid.bin src/big.bin src/%s src/%s src/" UMLAUT " mnt/ && cp --sparse=always src/sparse.bin mnt/ && "
		"for i in $(seq 1 40); do ln mnt/links/target.txt mnt/links/link_${i}_%0120d; done && "
		"touch mnt/frag.bin mnt/blocker && umount mnt && "
		"for k in $(seq 0 11); do ntfsfallocate -f -o $((k*262144)) -l 262144 %s /frag.bin && "
		"ntfsfallocate -f -o $((k*8192)) -l 8192 %s /blocker || exit 1; done >/dev/null 2>&1 && "
		"ntfs-3g %s mnt && dd if=src/frag.bin of=mnt/frag.bin conv=notrunc status=none",
		dir, LONGNAME, UNINAME, 0, img, img, img);
	int rc2 = sh("cd %s && umount mnt", dir);
	return rc || rc2 ? -1 : 0;
}

/* ---- listing vs ntfsls ---------------------------------------------------------------------- */

struct names { char **v; int n; };

static int collect(void *ctx, const struct ntfs_dirent *e)
{
	struct names *n = ctx;
	if (e->st.mft < 16 || !strcmp(e->name, ".") || !strcmp(e->name, ".."))
		return 0;   /* ntfsls hides system files */
	n->v = realloc(n->v, sizeof(char *) * (n->n + 1));
	n->v[n->n++] = strdup(e->name);
	return 0;
}

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void names_free(struct names *n)
{
	for (int i = 0; i < n->n; i++)
		free(n->v[i]);
	free(n->v);
	n->v = NULL;
	n->n = 0;
}

static int ntfsls(const char *img, const char *path, struct names *out)
{
	char cmd[1024], line[2048];
	snprintf(cmd, sizeof(cmd), "LC_ALL=C.UTF-8 ntfsls -p '%s' %s 2>/dev/null", path, img);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = 0;
		if (!*line || !strcmp(line, ".") || !strcmp(line, "..") || line[0] == '$')
			continue;
		out->v = realloc(out->v, sizeof(char *) * (out->n + 1));
		out->v[out->n++] = strdup(line);
	}
	return pclose(p);
}

static void check_listing(struct ntfs_vol *v, const char *img, const char *path, int expect)
{
	char name[256];
	uint64_t rec;
	struct names mine = { 0 }, ref = { 0 };
	int rc = ntfs_lookup(v, path, &rec);
	snprintf(name, sizeof(name), "lookup %s", path);
	CHECK(name, rc == 0);
	if (rc == 0)
		rc = ntfs_dir_list(v, rec, collect, &mine);
	snprintf(name, sizeof(name), "list %s (%d entries)", path, mine.n);
	CHECK(name, rc == 0 && (expect < 0 || mine.n == expect));
	ntfsls(img, path, &ref);
	qsort(mine.v, mine.n, sizeof(char *), cmpstr);
	qsort(ref.v, ref.n, sizeof(char *), cmpstr);
	int same = mine.n == ref.n;
	for (int i = 0; same && i < mine.n; i++)
		same = !strcmp(mine.v[i], ref.v[i]);
	snprintf(name, sizeof(name), "list %s equals ntfsls (%d vs %d)", path, mine.n, ref.n);
	CHECK(name, same && ref.n > 0);
	names_free(&mine);
	names_free(&ref);
}

/* ---- data vs the host copies and ntfscat ------------------------------------------------------ */

static int same_data(struct ntfs_vol *v, struct memdisk *d, const char *path, const uint8_t *want, size_t len)
{
	uint64_t rec;
	struct ntfs_stat st;
	if (ntfs_lookup(v, path, &rec) < 0 || ntfs_stat(v, rec, &st) < 0 || st.size != len)
		return 0;
	uint8_t *got = malloc(len + 1);
	int ok = ntfs_file_read(v, rec, 0, (uint32_t)len, got) == 0 && !memcmp(got, want, len);
	/* The same bytes straight from the runs (what a rescue of the file copies). */
	struct ntfs_run *r;
	uint32_t n;
	uint64_t size;
	if (ok && !st.resident && ntfs_attr_runs(v, rec, 0x80, NULL, &r, &n, &size) == 0) {
		memset(got, 0, len);
		for (uint32_t i = 0; i < n; i++)
			for (uint64_t c = 0; c < r[i].len && r[i].lcn != NTFS_SPARSE; c++) {
				uint64_t at = (r[i].vcn + c) * v->cluster;
				if (at >= len)
					break;
				uint64_t k = len - at < v->cluster ? len - at : v->cluster;
				memcpy(got + at, d->p + v->base + (r[i].lcn + c) * v->cluster, k);
			}
		ok = !memcmp(got, want, len);
		free(r);
	}
	free(got);
	return ok;
}

static void check_file(struct ntfs_vol *v, struct memdisk *d, const char *img, const char *rel)
{
	char host[1024], path[1024], name[300], out[1024];
	size_t len, clen;
	snprintf(host, sizeof(host), "%s/src/%s", dir, rel);
	snprintf(path, sizeof(path), "/%s", rel);
	uint8_t *want = slurp(host, &len);
	snprintf(name, sizeof(name), "data of %.200s", rel);
	CHECK(name, want && same_data(v, d, path, want, len));
	snprintf(out, sizeof(out), "%s/cat.out", dir);
	sh("LC_ALL=C.UTF-8 ntfscat %s '%s' > %s 2>/dev/null", img, path, out);
	uint8_t *cat = slurp(out, &clen);
	snprintf(name, sizeof(name), "data of %.200s equals ntfscat", rel);
	CHECK(name, cat && want && clen == len && !memcmp(cat, want, len));
	free(want);
	free(cat);
}

/* Whether runs equal what `ntfscluster -F path` prints for the $DATA attribute. */
static int ntfscluster_runs(const char *img, const char *path, const struct ntfs_run *r, uint32_t n, uint32_t *theirs)
{
	char cmd[1024], line[256];
	snprintf(cmd, sizeof(cmd), "ntfscluster -F '%s' %s 2>/dev/null", path, img);
	FILE *p = popen(cmd, "r");
	int in_data = 0, same = 1;
	uint32_t k = 0;
	while (p && fgets(line, sizeof(line), p)) {
		long long vcn, lcn, len;
		if (strstr(line, "0x80"))
			in_data = 1;
		else if (strstr(line, " - "))
			in_data = 0;
		else if (in_data && sscanf(line, "%lld %lld %lld", &vcn, &lcn, &len) == 3 && lcn != -2) {
			/* (-2 marks a range another extent record maps: not a run on disk) */
			same &= k < n && r[k].vcn == (uint64_t)vcn && r[k].len == (uint64_t)len &&
				(lcn == -1 ? r[k].lcn == NTFS_SPARSE : r[k].lcn == (uint64_t)lcn);
			k++;
		}
	}
	if (p)
		pclose(p);
	*theirs = k;
	return same && k == n;
}

/* ---- domains -------------------------------------------------------------------------------- */

struct dom { uint64_t bytes[NTFS_G_COUNT]; int last_group, order_ok; struct ntfs_vol *v; struct memdisk *d;
	     uint8_t *bitmap; uint64_t outside; };

static int dom_emit(void *ctx, int group, uint64_t off, uint64_t len)
{
	struct dom *x = ctx;
	if (group < x->last_group)
		x->order_ok = 0;
	x->last_group = group;
	x->bytes[group] += len;
	/* Every cluster a file or index uses must be marked used in $Bitmap. */
	if (x->bitmap && group >= NTFS_G_MFT && group <= NTFS_G_DATA)
		for (uint64_t c = (off - x->v->base) / x->v->cluster; c < (off - x->v->base + len) / x->v->cluster; c++)
			if (!(x->bitmap[c / 8] & (1 << (c % 8))))
				x->outside++;
	return 0;
}

static int used_emit(void *ctx, int group, uint64_t off, uint64_t len)
{
	struct dom *x = ctx;
	(void)group;
	x->bytes[NTFS_G_USED] += len;
	if (x->bitmap)
		for (uint64_t c = (off - x->v->base) / x->v->cluster; c < (off - x->v->base + len) / x->v->cluster; c++)
			x->bitmap[c / 8] |= 1 << (c % 8);
	return 0;
}

static uint64_t info_number(const char *img, const char *key)
{
	char cmd[512], line[512];
	snprintf(cmd, sizeof(cmd), "ntfsinfo -m %s 2>/dev/null", img);
	FILE *p = popen(cmd, "r");
	uint64_t val = UINT64_MAX;
	while (p && fgets(line, sizeof(line), p)) {
		char *k = strstr(line, key);
		if (k && val == UINT64_MAX)
			val = strtoull(k + strlen(key), NULL, 10);
	}
	if (p)
		pclose(p);
	return val;
}

static uint64_t runs_bytes(struct ntfs_vol *v, const char *path)
{
	uint64_t rec, size, sum = 0;
	struct ntfs_run *r;
	uint32_t n;
	if (ntfs_lookup(v, path, &rec) < 0 || ntfs_attr_runs(v, rec, 0x80, NULL, &r, &n, &size) < 0)
		return 0;
	for (uint32_t i = 0; i < n; i++)
		if (r[i].lcn != NTFS_SPARSE)
			sum += r[i].len * v->cluster;
	free(r);
	return sum;
}

static void check_domains(struct ntfs_vol *v, struct memdisk *d, const char *img)
{
	struct dom x = { .order_ok = 1, .v = v, .d = d };
	x.bitmap = calloc(1, v->clusters / 8 + 1);
	CHECK("used clusters from $Bitmap", ntfs_used(v, used_emit, &x) == 0);
	uint64_t total = info_number(img, "Volume Size in Clusters: "), free_ = info_number(img, "Free Clusters: ");
	CHECK("used clusters equal ntfsinfo's size minus free clusters",
	      total != UINT64_MAX && free_ != UINT64_MAX && x.bytes[NTFS_G_USED] / v->cluster == total - free_);
	CHECK("volume clusters equal ntfsinfo's", v->clusters == total);
	struct dom all = { .order_ok = 1, .v = v, .d = d, .bitmap = x.bitmap };
	int rc = ntfs_domain(v, NULL, dom_emit, &all);
	CHECK("domain of the whole volume", rc == 0 && all.order_ok);
	CHECK("domain groups: boot sectors, MFT, indexes, data, used",
	      all.bytes[NTFS_G_BOOT] == 2 * v->sector && all.bytes[NTFS_G_MFT] >= v->mft_records * v->rec_size &&
	      all.bytes[NTFS_G_INDEX] >= v->idx_size && all.bytes[NTFS_G_DATA] >= (6u << 20) &&
	      all.bytes[NTFS_G_USED] == x.bytes[NTFS_G_USED]);
	CHECK("domain: every MFT, index and data cluster is marked used in $Bitmap", all.outside == 0);
	struct dom jpg = { .order_ok = 1, .v = v, .d = d };
	rc = ntfs_domain(v, "*.jpg", dom_emit, &jpg);
	uint64_t want = runs_bytes(v, "/Users/bob/Documents/photo.jpg") + runs_bytes(v, "/Users/bob/Pictures/Holiday.JPG");
	CHECK("domain *.jpg: both jpgs' data (case-insensitive), after the metadata",
	      rc == 0 && jpg.order_ok && want > 0 && jpg.bytes[NTFS_G_DATA] == want && jpg.bytes[NTFS_G_USED] == 0 &&
	      jpg.bytes[NTFS_G_MFT] == all.bytes[NTFS_G_MFT]);
	struct dom docs = { .order_ok = 1, .v = v, .d = d };
	rc = ntfs_domain(v, "/users/*/documents/*", dom_emit, &docs);
	want = runs_bytes(v, "/Users/bob/Documents/photo.jpg") + runs_bytes(v, "/Users/alice/Documents/report.docx");
	CHECK("domain /users/*/documents/*: the documents of both users", rc == 0 && docs.bytes[NTFS_G_DATA] == want);
	/* Only the indexes above the matches: the root's, not /many's. */
	uint64_t rec, root_idx = 0, many_idx = 0;
	struct ntfs_run *r;
	uint32_t n;
	uint64_t size;
	if (ntfs_attr_runs(v, NTFS_ROOT, 0xA0, "$I30", &r, &n, &size) == 0) {
		for (uint32_t i = 0; i < n; i++)
			root_idx += r[i].len * v->cluster;
		free(r);
	}
	if (ntfs_lookup(v, "/many", &rec) == 0 && ntfs_attr_runs(v, rec, 0xA0, "$I30", &r, &n, &size) == 0) {
		for (uint32_t i = 0; i < n; i++)
			many_idx += r[i].len * v->cluster;
		free(r);
	}
	CHECK("glob domains: the indexes of the directories above the matches only",
	      root_idx > 0 && many_idx > 0 && docs.bytes[NTFS_G_INDEX] == root_idx && jpg.bytes[NTFS_G_INDEX] == root_idx &&
	      all.bytes[NTFS_G_INDEX] >= root_idx + many_idx);
	struct dom one = { .order_ok = 1, .v = v, .d = d };
	rc = ntfs_domain(v, "/many/file_1?3.txt", dom_emit, &one);
	CHECK("glob domain /many/file_1?3.txt: root and /many indexes, in group order",
	      rc == 0 && one.order_ok && one.bytes[NTFS_G_INDEX] == root_idx + many_idx);
	free(x.bitmap);
}

/* ---- damage --------------------------------------------------------------------------------- */

static uint64_t rec_off(struct ntfs_vol *v, uint64_t rec)
{
	uint64_t vcn = rec * v->rec_size / v->cluster;
	for (uint32_t i = 0; i < v->mft_nruns; i++)
		if (vcn >= v->mft_runs[i].vcn && vcn < v->mft_runs[i].vcn + v->mft_runs[i].len)
			return v->base + (v->mft_runs[i].lcn + vcn - v->mft_runs[i].vcn) * v->cluster +
			       rec * v->rec_size % v->cluster;
	return 0;
}

/* The first attribute of a type in a raw record (fixups left alone: lengths sit in the first
 * sector of these small records). */
static uint8_t *raw_attr(uint8_t *r, uint32_t type)
{
	uint32_t p = r[20] | r[21] << 8;
	while (p + 8 < 1024) {
		uint32_t t, l;
		memcpy(&t, r + p, 4);
		memcpy(&l, r + p + 4, 4);
		if (t == 0xFFFFFFFFu || l < 16)
			return NULL;
		if (t == type)
			return r + p;
		p += l;
	}
	return NULL;
}

struct counter { int n; };
static int count_file(void *ctx, const struct ntfs_file *f) { (void)f; ((struct counter *)ctx)->n++; return 0; }
static int count_ent(void *ctx, const struct ntfs_dirent *e) { (void)e; ((struct counter *)ctx)->n++; return 0; }
static int said;
static void quiet(void *ctx, const char *msg) { (void)ctx; (void)msg; said++; }

static int open_mem(struct ntfs_vol *v, struct memdisk *d)
{
	int rc = ntfs_open(v, &env, mem_read, d, 0, d->size);
	if (rc == 0) {
		v->say = quiet;
		v->say_ctx = NULL;
	}
	return rc;
}

static void check_damage(const uint8_t *orig, size_t len)
{
	struct memdisk d = { malloc(len), len, 0, 0, 0 };
	struct ntfs_vol v;
	uint64_t mid, big, many, target;
	struct counter files = { 0 }, c;
	memcpy(d.p, orig, len);
	if (open_mem(&v, &d) < 0 || ntfs_lookup(&v, "/mid.bin", &mid) < 0 || ntfs_lookup(&v, "/big.bin", &big) < 0 ||
	    ntfs_lookup(&v, "/many", &many) < 0 || ntfs_lookup(&v, "/links/target.txt", &target) < 0) {
		CHECK("damage: the clean volume opens", 0);
		return;
	}
	ntfs_walk(&v, NULL, count_file, &files);
	uint64_t mid_at = rec_off(&v, mid), big_at = rec_off(&v, big), many_at = rec_off(&v, many);
	ntfs_close(&v);

	/* A torn write: the update sequence number at a sector's end no longer matches. */
	d.p[mid_at + 510] ^= 0xFF;
	struct ntfs_stat st;
	c.n = 0;
	said = 0;
	CHECK("bad fixup: the volume still opens", open_mem(&v, &d) == 0);
	CHECK("bad fixup: the record is corrupt", ntfs_stat(&v, mid, &st) == -E_CORRUPT);
	CHECK("bad fixup: the walk says so and finds every other file",
	      ntfs_walk(&v, NULL, count_file, &c) == 0 && c.n == files.n - 1 && said >= 1);
	c.n = 0;
	CHECK("bad fixup: the root still lists (from the index's own copy)", ntfs_dir_list(&v, NTFS_ROOT, count_ent, &c) == 0 &&
	      c.n > 10);
	ntfs_close(&v);
	memcpy(d.p + mid_at, orig + mid_at, v.rec_size);

	/* A runlist pointing past the end of the volume. */
	uint8_t *a = raw_attr(d.p + big_at, 0x80);
	CHECK("runlist: big.bin has a non-resident $DATA", a && a[8] == 1);
	if (a && a[8]) {
		uint8_t *mp = a + (a[32] | a[33] << 8);
		unsigned ls = mp[0] & 15, os = mp[0] >> 4;
		memset(mp + 1 + ls, 0, os);
		mp[1 + ls + os - 1] = 0x7F;   /* a huge positive lcn */
		struct ntfs_run *r;
		uint32_t n;
		uint64_t size;
		open_mem(&v, &d);
		CHECK("runlist past the volume: -E_RANGE", ntfs_attr_runs(&v, big, 0x80, NULL, &r, &n, &size) == -E_RANGE);
		uint8_t buf[4096];
		CHECK("runlist past the volume: reading the file fails cleanly", ntfs_file_read(&v, big, 0, 4096, buf) == -E_RANGE);
		ntfs_close(&v);
		memcpy(d.p + big_at, orig + big_at, 1024);
		a[12] |= 0x01;   /* marked compressed: its clusters are not the file's bytes */
		open_mem(&v, &d);
		CHECK("compressed data: not read as if plain (-E_UNSUPP), runs still given",
		      ntfs_file_read(&v, big, 0, 4096, buf) == -E_UNSUPP && ntfs_attr_runs(&v, big, 0x80, NULL, &r, &n, &size) == 0);
		if (n)
			free(r);
		ntfs_close(&v);
		a[12] &= ~0x01;
		mp[0] = 0x9F;   /* a 9-byte length: not a runlist */
		open_mem(&v, &d);
		CHECK("runlist with a bad header: -E_CORRUPT", ntfs_attr_runs(&v, big, 0x80, NULL, &r, &n, &size) == -E_CORRUPT);
		ntfs_close(&v);
		memcpy(d.p + big_at, orig + big_at, 1024);
	}

	/* An attribute list entry leading into another file's record must not be followed. */
	uint64_t t_at;
	open_mem(&v, &d);
	t_at = rec_off(&v, target);
	ntfs_close(&v);
	a = raw_attr(d.p + t_at, 0x20);
	CHECK("links/target.txt has an attribute list", a != NULL);
	uint8_t *l = NULL, *l_save = NULL;
	uint32_t llen = 0;
	uint64_t l_at = 0;
	if (a && !a[8]) {
		l = a + (a[20] | a[21] << 8);
		llen = a[16] | a[17] << 8;
	} else if (a) {
		/* A non-resident list: its first run holds it (one cluster here). */
		uint8_t *mp = a + (a[32] | a[33] << 8);
		unsigned ls = mp[0] & 15, os = mp[0] >> 4;
		uint64_t lcn = 0;
		for (unsigned k = 0; k < os; k++)
			lcn |= (uint64_t)mp[1 + ls + k] << (8 * k);
		memcpy(&llen, a + 48, 4);
		l_at = lcn * 4096;   /* this volume's cluster size */
		if (l_at + llen <= len) {
			l = d.p + l_at;
			l_save = malloc(llen);
			memcpy(l_save, l, llen);
		}
	}
	if (l) {
		/* Point every FILE_NAME entry at record mid (another file), and one back at itself. */
		for (uint32_t p = 0; p + 26 <= llen;) {
			uint16_t el = l[p + 4] | l[p + 5] << 8;
			if (el < 26)
				break;
			if (l[p] == 0x30)
				for (int k = 0; k < 6; k++)
					l[p + 16 + k] = (uint8_t)(mid >> (8 * k));
			p += el;
		}
		char path[NTFS_PATH_MAX];
		said = 0;
		open_mem(&v, &d);
		int rc = ntfs_path(&v, target, path, sizeof(path));
		CHECK("attribute list into a foreign record: skipped and said, no name", rc == -E_NOENT && said > 0);
		ntfs_close(&v);
		memcpy(d.p + t_at, orig + t_at, 1024);
		if (l_save) {
			memcpy(d.p + l_at, l_save, llen);
			free(l_save);
		}
	}

	/* A loop of parents: /many's parent set to one of its own files... of itself. */
	a = raw_attr(d.p + many_at, 0x30);
	if (a) {
		uint8_t *f = a + (a[20] | a[21] << 8);
		uint64_t child;
		open_mem(&v, &d);
		ntfs_lookup(&v, "/many/file_007.txt", &child);
		ntfs_close(&v);
		for (int k = 0; k < 6; k++)
			f[k] = (uint8_t)(many >> (8 * k));
		char path[NTFS_PATH_MAX];
		open_mem(&v, &d);
		CHECK("a directory that is its own parent: -E_CORRUPT", ntfs_path(&v, child, path, sizeof(path)) == -E_CORRUPT);
		ntfs_close(&v);
		memcpy(d.p + many_at, orig + many_at, 1024);
	}

	/* An unreadable MFT record: the walk skips it, a listing still names it. */
	open_mem(&v, &d);
	d.bad_lo = mid_at;
	d.bad_hi = mid_at + 512;
	c.n = 0;
	said = 0;
	CHECK("unreadable record: said and skipped", ntfs_walk(&v, NULL, count_file, &c) == 0 && c.n == files.n - 1 &&
	      said >= 1);
	ntfs_close(&v);
	d.bad_lo = d.bad_hi = 0;

	/* A damaged index block of /many: the listing goes on without its entries. */
	open_mem(&v, &d);
	struct ntfs_run *r;
	uint32_t n;
	uint64_t size;
	c.n = 0;
	int rc = ntfs_attr_runs(&v, many, 0xA0, "$I30", &r, &n, &size);
	CHECK("/many has an index allocation", rc == 0 && n > 0 && size >= 2 * v.idx_size);
	if (rc == 0 && n > 0) {
		uint64_t at = r[0].lcn * v.cluster;
		d.p[at + 510] ^= 0x55;
		said = 0;
		ntfs_close(&v);
		open_mem(&v, &d);
		CHECK("damaged index block: said once, the lost entries completed from the MFT",
		      ntfs_dir_list(&v, many, count_ent, &c) == 0 && said == 1 && c.n == 300);
		/* Every file is still found by path: the MFT knows its parent. */
		int found = 0;
		for (int i = 0; i < 300; i++) {
			char path[64];
			uint64_t rec;
			snprintf(path, sizeof(path), "/many/FILE_%03d.txt", i);
			found += ntfs_lookup(&v, path, &rec) == 0;
		}
		CHECK("damaged index block: all 300 files still found by path (through the MFT)", found == 300);
		d.p[at + 510] ^= 0x55;
		free(r);
	}
	ntfs_close(&v);

	/* Boot sectors: the backup takes over; with both gone it is not NTFS. */
	memset(d.p, 0, 512);
	rc = ntfs_open(&v, &env, mem_read, &d, 0, d.size);
	CHECK("bad boot sector: the backup opens the volume", rc == 0 && v.used_backup_boot);
	if (rc == 0)
		ntfs_close(&v);
	memset(d.p + d.size - 512, 0, 512);
	CHECK("both boot sectors bad: -E_FOREIGN", ntfs_open(&v, &env, mem_read, &d, 0, d.size) == -E_FOREIGN);
	memcpy(d.p, orig, 512);
	memcpy(d.p + d.size - 512, orig + d.size - 512, 512);

	/* Random damage all over the MFT's first records: never a crash, every call returns. */
	open_mem(&v, &d);
	uint64_t mft = v.mft_lcn * v.cluster, span = 64 * v.rec_size;
	ntfs_close(&v);
	int opened = 0;
	for (int round = 0; round < 60; round++) {
		memcpy(d.p + mft, orig + mft, span);
		for (int k = 0; k < 40; k++)
			d.p[mft + (rnd8() << 8 | rnd8()) % span] = rnd8();
		if (open_mem(&v, &d) < 0)
			continue;
		opened++;
		struct counter cc = { 0 };
		struct dom x = { .order_ok = 1, .v = &v, .d = &d };
		ntfs_walk(&v, "*", count_file, &cc);
		ntfs_dir_list(&v, NTFS_ROOT, count_ent, &cc);
		ntfs_domain(&v, NULL, dom_emit, &x);
		uint64_t rec;
		ntfs_lookup(&v, "/Users/bob/Pictures/notes.txt", &rec);
		ntfs_close(&v);
	}
	CHECK("random MFT damage: 60 rounds without a crash", opened >= 0);
	free(d.p);
}

/* ---- partition tables ----------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void check_parttab(const uint8_t *vol, size_t vlen)
{
	/* GPT from the independent Python writer the QEMU tests use. */
	char path[512];
	snprintf(path, sizeof(path), "%s/gpt.img", dir);
	int rc = sh("cd %s && python3 -c \"import sys; sys.path.insert(0, '%s/tests/qemu'); import mkdemo; "
		    "print(mkdemo.ntfs_disk('gpt.img', 64 << 20, {'a/b.txt': b'x' * 5000}))\" > first.txt 2>/dev/null",
		    dir, root);
	size_t len, flen;
	uint8_t *disk = rc == 0 ? slurp(path, &len) : NULL;
	char ff[512];
	snprintf(ff, sizeof(ff), "%s/first.txt", dir);
	uint8_t *first = slurp(ff, &flen);
	uint64_t first_lba = first ? strtoull((char *)first, NULL, 10) : 0;
	free(first);
	CHECK("gpt: test disk made by mkdemo.ntfs_disk", disk != NULL && first_lba > 0);
	if (!disk)
		return;
	struct memdisk d = { disk, len, 0, 0, 0 };
	struct part p[8];
	struct parttab t = { 0 };
	unsigned n = 0;
	rc = parttab_scan(mem_read, &d, len, 512, p, 8, &t), n = t.n;
	CHECK("gpt: one NTFS partition by type and signature",
	      rc == 0 && n == 1 && p[0].scheme == 'g' && p[0].ntfs_type && p[0].ntfs_sig && p[0].start == first_lba * 512);
	if (rc == 0 && n == 1) {
		struct ntfs_vol v;
		uint64_t rec;
		rc = ntfs_open(&v, &env, mem_read, &d, p[0].start, p[0].size);
		CHECK("gpt: the volume opens and /a/b.txt is found", rc == 0 && ntfs_lookup(&v, "/A/B.TXT", &rec) == 0);
		if (rc == 0)
			ntfs_close(&v);
	}
	memset(disk + 512, 0, 512);   /* the primary header gone: the backup at the last LBA */
	rc = parttab_scan(mem_read, &d, len, 512, p, 8, &t), n = t.n;
	CHECK("gpt: the backup header when the primary is bad", rc == 0 && n == 1 && p[0].gpt_backup && p[0].ntfs_sig);
	disk[len - 512 + 40] ^= 1;   /* and now the backup's header CRC fails too */
	rc = parttab_scan(mem_read, &d, len, 512, p, 8, &t), n = t.n;
	CHECK("gpt: both headers bad is an error", rc < 0 && n == 0);
	free(disk);

	/* The same on a 4Kn disk: LBAs of 4096 bytes. */
	rc = sh("cd %s && python3 -c \"import sys; sys.path.insert(0, '%s/tests/qemu'); import mkdemo; mkdemo.SECTOR = 4096; "
		"print(mkdemo.ntfs_disk('gpt4k.img', 64 << 20, {'c.txt': b'y' * 9000}))\" > first4k.txt 2>/dev/null",
		dir, root);
	snprintf(path, sizeof(path), "%s/gpt4k.img", dir);
	disk = rc == 0 ? slurp(path, &len) : NULL;
	snprintf(ff, sizeof(ff), "%s/first4k.txt", dir);
	first = slurp(ff, &flen);
	first_lba = first ? strtoull((char *)first, NULL, 10) : 0;
	free(first);
	CHECK("gpt 4Kn: test disk made by mkdemo.ntfs_disk", disk != NULL && first_lba > 0);
	if (disk) {
		struct memdisk d4 = { disk, len, 0, 0, 0 };
		rc = parttab_scan(mem_read, &d4, len, 4096, p, 8, &t), n = t.n;
		CHECK("gpt 4Kn: the NTFS partition at LBA*4096", rc == 0 && n == 1 && p[0].ntfs_sig &&
		      p[0].start == first_lba * 4096);
		if (rc == 0 && n == 1) {
			struct ntfs_vol v;
			uint64_t rec;
			rc = ntfs_open(&v, &env, mem_read, &d4, p[0].start, p[0].size);
			CHECK("gpt 4Kn: the volume (4096-byte sectors) opens and /c.txt is found",
			      rc == 0 && v.sector == 4096 && ntfs_lookup(&v, "/C.txt", &rec) == 0);
			if (rc == 0)
				ntfs_close(&v);
		}
		memset(disk + 4096, 0, 4096);   /* the primary header gone: the backup at the last LBA */
		rc = parttab_scan(mem_read, &d4, len, 4096, p, 8, &t), n = t.n;
		CHECK("gpt 4Kn: the backup header at the last LBA", rc == 0 && n == 1 && p[0].gpt_backup);
		free(disk);
	}

	/* MBR: a primary NTFS partition, and a logical one in an extended partition. */
	uint64_t sz = 2048 * 512 + 2 * (vlen + 2048 * 512);
	uint8_t *m = calloc(1, sz);
	uint32_t vs = (uint32_t)(vlen / 512);
	m[510] = 0x55;
	m[511] = 0xAA;
	uint8_t *e = m + 446;
	e[4] = 0x07;
	put32(e + 8, 2048);
	put32(e + 12, vs);
	e += 16;
	uint32_t ext = 2048 + vs;
	e[4] = 0x0F;
	put32(e + 8, ext);
	put32(e + 12, (uint32_t)(sz / 512) - ext);
	uint8_t *ebr = m + (uint64_t)ext * 512;
	ebr[510] = 0x55;
	ebr[511] = 0xAA;
	ebr[446 + 4] = 0x07;
	put32(ebr + 446 + 8, 2048);
	put32(ebr + 446 + 12, vs);
	/* The link goes to a second EBR that links to itself: the chain must still end. */
	uint32_t link = 2048 + vs;
	ebr[462 + 4] = 0x05;
	put32(ebr + 462 + 8, link);
	uint8_t *ebr2 = m + ((uint64_t)ext + link) * 512;
	ebr2[510] = 0x55;
	ebr2[511] = 0xAA;
	ebr2[462 + 4] = 0x05;
	put32(ebr2 + 462 + 8, link);
	memcpy(m + 2048 * 512, vol, vlen);
	memcpy(m + ((uint64_t)ext + 2048) * 512, vol, vlen);
	struct memdisk md = { m, sz, 0, 0, 0 };
	rc = parttab_scan(mem_read, &md, sz, 512, p, 8, &t), n = t.n;
	CHECK("mbr: a primary and a logical NTFS partition, the EBR loop ended",
	      rc == 0 && n == 2 && p[0].ntfs_sig && p[0].mbr_type == 7 && p[1].index == 5 && p[1].ntfs_sig &&
	      p[1].start == ((uint64_t)ext + 2048) * 512);
	free(m);

	/* mformat's superfloppy (the boot image) names itself as partition 1 at LBA 0: no
	 * partition, and nothing ignored to warn about; the same entry without a FAT is warned. */
	snprintf(path, sizeof(path), "%s/floppy.img", dir);
	rc = sh("rm -f %s && dd if=/dev/zero of=%s bs=1M count=16 status=none && mformat -i %s -v FLOPPY ::",
		path, path, path);
	uint8_t *fl = rc == 0 ? slurp(path, &len) : NULL;
	CHECK("mformat makes a superfloppy with an entry at LBA 0", fl && fl[446 + 4] && !fl[446 + 8]);
	if (fl) {
		struct memdisk fd = { fl, len, 0, 0, 0 };
		t = (struct parttab){ 0 };
		rc = parttab_scan(mem_read, &fd, len, 512, p, 8, &t);
		CHECK("a FAT superfloppy: no partitions, nothing ignored", rc == 0 && t.n == 0 && t.ignored == 0);
		memset(fl, 0, 90);   /* no longer a FAT boot sector */
		t = (struct parttab){ 0 };
		rc = parttab_scan(mem_read, &fd, len, 512, p, 8, &t);
		CHECK("an entry at LBA 0 without a FAT boot sector is ignored and counted", t.n == 0 && t.ignored == 1);
		free(fl);
	}
}

static void check_globs(void)
{
	CHECK("glob *.jpg matches a name anywhere", ntfs_glob_match("*.jpg", "/Users/bob/Documents/photo.JPG"));
	CHECK("glob *.jpg does not match .jpeg", !ntfs_glob_match("*.jpg", "/a/photo.jpeg"));
	CHECK("glob with / matches whole components",
	      ntfs_glob_match("/Users/*/Documents/*", "/users/bob/documents/x.doc") &&
	      !ntfs_glob_match("/Users/*/Documents/*", "/Users/bob/x/Documents/y") &&
	      !ntfs_glob_match("/Users/*/Documents/*", "/Users/bob/Documents"));
	CHECK("glob ? is one character", ntfs_glob_match("file_00?.txt", "/many/file_007.txt") &&
	      !ntfs_glob_match("file_0?.txt", "/many/file_007.txt"));
	CHECK("glob * backtracks", ntfs_glob_match("*a*b*c", "/xaxxbxxbc") && !ntfs_glob_match("*a*b*c", "/xaxxbxxb"));
}

int main(void)
{
	check_globs();
	if (!getcwd(root, sizeof(root)))
		root[0] = 0;
	snprintf(dir, sizeof(dir), "/tmp/test_ntfs.XXXXXX");
	if (!mkdtemp(dir)) {
		CHECK("temporary directory", 0);
		return CHECK_DONE();
	}
	char img[512];
	snprintf(img, sizeof(img), "%s/v.img", dir);
	int rc = build_volume("v.img", "-L test");
	CHECK("volume built with mkntfs and filled through an ntfs-3g mount", rc == 0);
	size_t len;
	uint8_t *image = rc == 0 ? slurp(img, &len) : NULL;
	if (image) {
		struct memdisk d = { image, len, 0, 0, 0 };
		struct ntfs_vol v;
		rc = ntfs_open(&v, &env, mem_read, &d, 0, len);
		CHECK("ntfs_open", rc == 0 && v.cluster == 4096 && v.rec_size == 1024 && !v.used_backup_boot);
		if (rc == 0) {
			check_listing(&v, img, "/", -1);
			check_listing(&v, img, "/many", 300);
			check_listing(&v, img, "/Users/bob/Pictures", 2);
			check_listing(&v, img, "/links", 41);
			uint64_t rec;
			struct ntfs_stat st;
			CHECK("/many needs an index allocation",
			      ntfs_lookup(&v, "/MANY/FILE_299.TXT", &rec) == 0 && ntfs_stat(&v, rec, &st) == 0 && st.size == 309);
			const char *files[] = { "small.txt", "mid.bin", "big.bin", "frag.bin", "sparse.bin",
						"Users/bob/Documents/photo.jpg", "many/file_123.txt", LONGNAME, UNINAME,
						"links/target.txt" };
			for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
				check_file(&v, &d, img, files[i]);
			struct ntfs_run *r;
			uint32_t n;
			uint64_t size;
			int fr = ntfs_lookup(&v, "/frag.bin", &rec) == 0 ? ntfs_attr_runs(&v, rec, 0x80, NULL, &r, &n, &size) : -1;
			printf("frag.bin: %u runs\n", fr == 0 ? n : 0);
			CHECK("frag.bin is fragmented", fr == 0 && n > 1);
			if (fr == 0)
				free(r);
			int sp = ntfs_lookup(&v, "/sparse.bin", &rec) == 0 ? ntfs_attr_runs(&v, rec, 0x80, NULL, &r, &n, &size) : -1;
			int holes = 0;
			for (uint32_t i = 0; sp == 0 && i < n; i++)
				holes += r[i].lcn == NTFS_SPARSE;
			CHECK("sparse.bin has sparse runs", sp == 0 && holes > 0 && size == 8 << 20);
			if (sp == 0)
				free(r);
			char path[NTFS_PATH_MAX];
			CHECK("path of a file from its parents",
			      ntfs_lookup(&v, "/users/BOB/documents/PHOTO.jpg", &rec) == 0 &&
			      ntfs_path(&v, rec, path, sizeof(path)) == 0 && !strcmp(path, "/Users/bob/Documents/photo.jpg"));
			CHECK("path of the root", ntfs_path(&v, NTFS_ROOT, path, sizeof(path)) == 0 && !strcmp(path, "/"));
			CHECK("lookup of a missing name", ntfs_lookup(&v, "/Users/carol", &rec) == -E_NOENT);
			CHECK("$UpCase loaded", v.upcase != NULL);
			CHECK("lookup folds non-ASCII case through $UpCase (\"\xc3\xa4RGER.TXT\")",
			      ntfs_lookup(&v, "/\xc3\xa4RGER.TXT", &rec) == 0 && ntfs_stat(&v, rec, &st) == 0 && st.size == 10);
			struct counter um = { 0 };
			CHECK("walk glob folds non-ASCII case (\"*\xc3\xa4rg*\")",
			      ntfs_walk(&v, "*\xc3\xa4rg*", count_file, &um) == 0 && um.n == 1);
			CHECK("lookup through a file", ntfs_lookup(&v, "/small.txt/x", &rec) == -E_NOENT);
			check_domains(&v, &d, img);
			struct counter c = { 0 };
			d.reads = 0;
			ntfs_walk(&v, NULL, count_file, &c);
			printf("walk: %llu MFT records, %llu reads\n", (unsigned long long)v.mft_records,
			       (unsigned long long)d.reads);
			CHECK("the walk reads the MFT in windows (fewer reads than records)",
			      c.n > 300 && d.reads < v.mft_records / 4);
			struct counter e = { 0 };
			uint64_t many;
			d.reads = 0;
			int lr = ntfs_lookup(&v, "/many", &many) == 0 ? ntfs_dir_list(&v, many, count_ent, &e) : -1;
			printf("list /many: %d entries, %llu reads\n", e.n, (unsigned long long)d.reads);
			CHECK("a listing reads a record per entry, not a window", lr == 0 && e.n == 300 && d.reads < 2 * 300);
			ntfs_close(&v);
		}
		check_damage(image, len);
		check_parttab(image, len);
		free(image);
	}
	/* Small clusters: records of 1024 bytes span two 512-byte clusters. */
	rc = build_volume("v512.img", "-c 512 -s 512");
	snprintf(img, sizeof(img), "%s/v512.img", dir);
	image = rc == 0 ? slurp(img, &len) : NULL;
	CHECK("volume with 512-byte clusters built", image != NULL);
	if (image) {
		struct memdisk d = { image, len, 0, 0, 0 };
		struct ntfs_vol v;
		rc = ntfs_open(&v, &env, mem_read, &d, 0, len);
		CHECK("512-byte clusters: opens", rc == 0 && v.cluster == 512);
		if (rc == 0) {
			check_listing(&v, img, "/many", 300);
			check_file(&v, &d, img, "frag.bin");
			check_file(&v, &d, img, "Users/alice/Documents/report.docx");
			check_domains(&v, &d, img);
			ntfs_close(&v);
		}
		free(image);
	}
	/* A fragmented MFT: the data zone filled by ntfsfallocate, another file put where the
	 * MFT would grow, then 300 files made: the MFT continues in pieces elsewhere. */
	rc = sh("cd %s && rm -f m.img && truncate -s 32M m.img && mkntfs -F -Q -q m.img >/dev/null 2>&1 && echo x > x && "
		"ntfscp -q m.img x big && ntfscp -q m.img x b2 && "
		"free=$(ntfscluster -i m.img 2>/dev/null | awk -F': ' '/bytes of free space/ {print $2}') && "
		"ntfsfallocate -f -l $((free - 2097152)) m.img /big >/dev/null 2>&1 && ntfsfallocate -f -l 1048576 m.img /b2 >/dev/null 2>&1 && "
		"ntfs-3g m.img mnt && mkdir mnt/d && for i in $(seq 1 300); do echo $i > mnt/d/f$i; done; umount mnt",
		dir);
	snprintf(img, sizeof(img), "%s/m.img", dir);
	image = rc == 0 ? slurp(img, &len) : NULL;
	CHECK("volume with a fragmented MFT built", image != NULL);
	if (image) {
		struct memdisk d = { image, len, 0, 0, 0 };
		struct ntfs_vol v;
		rc = ntfs_open(&v, &env, mem_read, &d, 0, len);
		CHECK("fragmented MFT: opens", rc == 0);
		if (rc == 0) {
			uint32_t k;
			int same = ntfscluster_runs(img, "/$MFT", v.mft_runs, v.mft_nruns, &k);
			printf("fragmented MFT: %u runs, ntfscluster %u\n", v.mft_nruns, k);
			CHECK("fragmented MFT: its runs equal ntfscluster's", v.mft_nruns > 1 && same);
			check_listing(&v, img, "/d", 300);
			uint64_t rec;
			uint8_t buf[8];
			CHECK("fragmented MFT: a file in a late record reads back",
			      ntfs_lookup(&v, "/d/f300", &rec) == 0 && ntfs_file_read(&v, rec, 0, 4, buf) == 0 &&
			      !memcmp(buf, "300\n", 4));
			ntfs_close(&v);
		}
		free(image);
	}
	/* ext.bin: 4 KiB appends alternating with new 4 KiB files make ~250 runs, more than its
	 * record holds: its $DATA continues in extent records, through an attribute list. */
	rc = sh("cd %s && rm -f al.img src/ext.bin && truncate -s 32M al.img && mkntfs -F -Q -q al.img >/dev/null 2>&1 && "
		"ntfs-3g al.img mnt && head -c 4096 src/piece > piece4 && for k in $(seq 1 250); do "
		"cat piece4 >> mnt/ext.bin && cat piece4 >> src/ext.bin && cat piece4 > mnt/b_$k; done; umount mnt", dir);
	snprintf(img, sizeof(img), "%s/al.img", dir);
	image = rc == 0 ? slurp(img, &len) : NULL;
	CHECK("volume with a file of 250 fragments built", image != NULL);
	if (image) {
		struct memdisk d = { image, len, 0, 0, 0 };
		struct ntfs_vol v;
		uint64_t rec, size;
		struct ntfs_run *r;
		uint32_t n = 0, k = 0;
		rc = ntfs_open(&v, &env, mem_read, &d, 0, len);
		int fr = rc == 0 && ntfs_lookup(&v, "/ext.bin", &rec) == 0 ? ntfs_attr_runs(&v, rec, 0x80, NULL, &r, &n, &size) : -1;
		int eq = fr == 0 && ntfscluster_runs(img, "/ext.bin", r, n, &k);
		printf("ext.bin: %u runs, ntfscluster %u\n", n, k);
		CHECK("ext.bin: a runlist over extent records equals ntfscluster's", fr == 0 && n > 200 && eq);
		if (fr == 0)
			free(r);
		if (rc == 0) {
			check_file(&v, &d, img, "ext.bin");
			ntfs_close(&v);
		}
		free(image);
	}
	/* 4096-byte sectors: the backup boot sector is a 4 KiB sector at the end. */
	rc = build_volume("v4k.img", "-s 4096 -c 4096");
	snprintf(img, sizeof(img), "%s/v4k.img", dir);
	image = rc == 0 ? slurp(img, &len) : NULL;
	CHECK("volume with 4096-byte sectors built", image != NULL);
	if (image) {
		struct memdisk d = { image, len, 0, 0, 0 };
		struct ntfs_vol v;
		rc = ntfs_open(&v, &env, mem_read, &d, 0, len);
		CHECK("4096-byte sectors: opens", rc == 0 && v.sector == 4096);
		if (rc == 0) {
			check_listing(&v, img, "/Users/bob/Pictures", 2);
			check_file(&v, &d, img, "frag.bin");
			ntfs_close(&v);
		}
		memset(image, 0, 4096);
		rc = ntfs_open(&v, &env, mem_read, &d, 0, len);
		CHECK("4096-byte sectors: the backup boot sector opens it", rc == 0 && v.used_backup_boot);
		if (rc == 0)
			ntfs_close(&v);
		free(image);
	}
	if (!getenv("KEEP"))
		sh("rm -rf %s", dir);
	return CHECK_DONE();
}
