/* NTFS in the appliance (spec ntfs.md): `domain <ov> ntfs[:<glob>]` turns the NTFS volumes of an
 * overlay's source into a rescue domain in priority groups, and `ls` lists a directory. Both
 * read through the overlay and store what they take from the source: every metadata sector
 * they touch is rescued on the way (fs/ntfs.c does the parsing). */
#include "../kernel/console.h"
#include "../kernel/mem.h"
#include "../kernel/shell.h"
#include "overlay.h"
#include "../lib/errors.h"
#include "../fs/ntfs.h"
#include "../fs/parttab.h"
#include "../lib/port.h"

#define MAX_PARTS 16

/* The NTFS reader asks for any bytes; the overlay takes whole source sectors. */
static int ov_read(void *ctx, uint64_t off, uint32_t len, void *buf)
{
	struct overlay *o = ctx;
	uint32_t ls = o->src.blk->lsize;
	uint64_t a = off / ls * ls, e = (off + len + ls - 1) / ls * ls, bad;
	if (a == off && e == off + len)
		return cow_ov_read_rescuing(o->cow, off, len, buf, &bad);
	uint8_t *bounce = kernel_env.alloc(e - a);
	if (!bounce)
		return -E_NOMEM;
	int rc = cow_ov_read_rescuing(o->cow, a, e - a, bounce, &bad);
	if (rc == 0)
		memcpy(buf, bounce + (off - a), len);
	kernel_env.free(bounce);
	return rc;
}

static void say_damage(void *ctx, const char *msg)
{
	kprintf("%s: ntfs: %s\n", (const char *)ctx, msg);
}

/* The NTFS partitions of the source (or the whole disk when it holds one without a table).
 * What the table's checks refused was logged when the disk was found: not said again here. */
static int ntfs_parts(struct overlay *o, struct part *parts, unsigned *n, struct parttab *t, char *why,
		      size_t whylen)
{
	unsigned k = 0;
	*t = (struct parttab){ 0 };
	int rc = parttab_scan(ov_read, o, o->src.blk->sectors * o->src.blk->lsize, o->src.blk->lsize, parts,
			      MAX_PARTS, t);
	if (rc < 0 && rc != -E_NOENT && rc != -E_CORRUPT) {
		fmt_snprintf(why, whylen, "reading the partition table: %s", err_str(rc));
		return rc;
	}
	for (unsigned i = 0; i < t->n; i++)
		if (parts[i].ntfs_sig)
			parts[k++] = parts[i];
	*n = k;
	if (!k) {
		fmt_snprintf(why, whylen, "no NTFS volume on %s", o->src.blk->name);
		return -E_NOENT;
	}
	return 0;
}

static int open_vol(struct overlay *o, const struct part *p, struct ntfs_vol *v, const char *ovname)
{
	int rc = ntfs_open(v, &kernel_env, ov_read, o, p->start, p->size);
	if (rc == 0) {
		v->say = say_damage;
		v->say_ctx = (void *)ovname;
	}
	return rc;
}

/* ---- domain <ov> ntfs[:<glob>] ------------------------------------------------------------ */

/* Ranges collected per NTFS group over every volume, then laid out group by group. */
struct collect {
	struct rescue_domain g[NTFS_G_COUNT];
	uint32_t ls;
};

static int collect_range(void *ctx, int group, uint64_t off, uint64_t len)
{
	struct collect *c = ctx;
	if (group < 0 || group >= NTFS_G_COUNT || !len)
		return 0;
	uint64_t s = off / c->ls, e = (off + len + c->ls - 1) / c->ls;
	return rescue_domain_add(&c->g[group], s, e - s);
}

int ntfs_domain_build(struct overlay *o, const char *glob, struct rescue_domain *d, char *why, size_t whylen)
{
	static const char *const names[MAX_OV] = { "ov0", "ov1", "ov2", "ov3", "ov4", "ov5", "ov6", "ov7" };
	const char *ovname = names[overlay_index(o)];
	struct part parts[MAX_PARTS];
	unsigned n;
	struct collect *c = kernel_env.alloc(sizeof(*c));
	if (!c)
		return -E_NOMEM;
	c->ls = o->src.blk->lsize;
	for (int g = 0; g < NTFS_G_COUNT; g++)
		rescue_domain_init(&c->g[g], &kernel_env);
	rescue_domain_init(d, &kernel_env);
	struct parttab t;
	int rc = ntfs_parts(o, parts, &n, &t, why, whylen);
	/* The partition tables come first, with the boot sectors (a GPT at both ends of the disk). */
	for (unsigned i = 0; i < t.nareas && rc == 0; i++)
		rc = collect_range(c, NTFS_G_BOOT, t.area[i].start, t.area[i].size);
	unsigned opened = 0;
	for (unsigned i = 0; i < n && rc == 0; i++) {
		struct ntfs_vol v;
		int vrc = open_vol(o, &parts[i], &v, ovname);
		if (vrc < 0) {
			kprintf("%s: partition %u: not readable as NTFS: %s\n", ovname, parts[i].index, err_str(vrc));
			continue;
		}
		opened++;
		rc = ntfs_domain(&v, glob, collect_range, c);
		if (rc < 0)
			fmt_snprintf(why, whylen, "partition %u: %s", parts[i].index, err_str(rc));
		ntfs_close(&v);
	}
	if (rc == 0 && !opened) {
		fmt_snprintf(why, whylen, "no NTFS volume on %s could be read", o->src.blk->name);
		rc = -E_NOENT;
	}
	for (int g = 0; g < NTFS_G_COUNT && rc == 0; g++) {
		if ((rc = rescue_domain_end_group(&c->g[g])) < 0)
			break;
		for (uint32_t i = 0; i < c->g[g].n && rc == 0; i++)
			rc = rescue_domain_add(d, c->g[g].range[i].start, c->g[g].range[i].count);
		if (rc == 0)
			rc = rescue_domain_end_group(d);
	}
	if (rc < 0 && !why[0])
		fmt_snprintf(why, whylen, "%s", err_str(rc));
	if (rc < 0)
		rescue_domain_free(d);
	for (int g = 0; g < NTFS_G_COUNT; g++)
		rescue_domain_free(&c->g[g]);
	kernel_env.free(c);
	return rc;
}

/* ---- ls <ov> [<partition>:]<path> --------------------------------------------------------- */

/* NTFS time (100 ns since 1601) as "YYYY-MM-DD HH:MM". */
static void ntfs_time_text(uint64_t t, char *out, size_t n)
{
	uint64_t secs = t / 10000000, days = secs / 86400;
	if (secs < 11644473600ull) {
		fmt_snprintf(out, n, "----------------");
		return;
	}
	days -= 11644473600ull / 86400;   /* to the Unix epoch */
	uint64_t rem = secs % 86400;
	/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
	int64_t z = (int64_t)days + 719468, era = z / 146097;
	uint64_t doe = (uint64_t)(z - era * 146097);
	uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	uint64_t day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
	uint64_t year = yoe + (uint64_t)era * 400 + (month <= 2);
	fmt_snprintf(out, n, "%04llu-%02llu-%02llu %02llu:%02llu", (unsigned long long)year,
		     (unsigned long long)month, (unsigned long long)day, (unsigned long long)(rem / 3600),
		     (unsigned long long)(rem / 60 % 60));
}

struct ls_state { unsigned entries; uint64_t bytes; };

static int print_entry(void *ctx, const struct ntfs_dirent *e)
{
	struct ls_state *s = ctx;
	char when[24];
	if (!e->name[0] || (e->name[0] == '$' && e->st.mft < 16))
		return 0;   /* the volume's own metadata files */
	ntfs_time_text(e->st.mtime, when, sizeof(when));
	kprintf("%c %12llu  %s  %s%s\n", e->st.dir ? 'd' : '-', (unsigned long long)e->st.size, when, e->name,
		e->st.dir ? "/" : "");
	s->entries++;
	s->bytes += e->st.dir ? 0 : e->st.size;
	return 0;
}

static int cmd_ls(int argc, char **argv)
{
	if (argc != 3)
		return -E_USAGE;
	struct overlay *o = overlay_find(argv[1]);
	if (!o)
		return -E_NOENT;
	/* "<partition>:<path>" or just a path (the first NTFS volume). */
	const char *path = argv[2];
	unsigned want = 0;
	const char *colon = strchr(path, ':');
	if (colon) {
		for (const char *p = path; p < colon; p++) {
			if (*p < '0' || *p > '9' || want > 1000)
				return -E_USAGE;
			want = want * 10 + (unsigned)(*p - '0');
		}
		path = colon + 1;
	}
	if (!*path)
		path = "/";
	if (overlay_try_lock(o) < 0) {
		kprintf("ls: %s has a running job; stop it first (stop %s)\n", argv[1], argv[1]);
		return cmd_said(-E_BUSY);
	}
	char why[120] = "";
	struct part parts[MAX_PARTS];
	unsigned n = 0, i = 0;
	struct parttab t;
	int rc = ntfs_parts(o, parts, &n, &t, why, sizeof(why));
	while (rc == 0 && i < n && want && parts[i].index != want)
		i++;
	if (rc == 0 && i == n) {
		fmt_snprintf(why, sizeof(why), "no NTFS volume in partition %u", want);
		rc = -E_NOENT;
	}
	struct ntfs_vol v;
	if (rc == 0 && (rc = open_vol(o, &parts[i], &v, argv[1])) < 0)
		fmt_snprintf(why, sizeof(why), "partition %u: %s", parts[i].index, err_str(rc));
	if (rc == 0) {
		uint64_t rec;
		struct ntfs_stat st;
		struct ls_state s = { 0, 0 };
		rc = ntfs_lookup(&v, path, &rec);
		if (rc == 0)
			rc = ntfs_stat(&v, rec, &st);
		if (rc == 0 && st.dir) {
			kprintf("%s partition %u:%s\n", argv[1], parts[i].index, path);
			rc = ntfs_dir_list(&v, rec, print_entry, &s);
			kprintf("%u entries, %llu bytes in files\n", s.entries, (unsigned long long)s.bytes);
		} else if (rc == 0) {
			struct ntfs_dirent e;
			memset(&e, 0, sizeof(e));
			e.st = st;
			fmt_snprintf(e.name, sizeof(e.name), "%s", path);
			print_entry(&s, &e);
		}
		if (rc < 0)
			fmt_snprintf(why, sizeof(why), "%s: %s", path, err_str(rc));
		ntfs_close(&v);
	}
	overlay_unlock(o);
	if (rc < 0)
		kprintf("ls: %s\n", why);
	return rc;
}
COMMAND(ls, "ls <ov> [<partition>:]<path>", "list an NTFS directory on an overlay's source",
	"Reads through the overlay: what the listing touches is rescued into the cow on the way.\n"
	"The partition is its number in the table (default: the first NTFS volume); '/' or '\\\\'\n"
	"separate names, compared without case. Example: ls ov0 2:/Users/ann/Documents\n", cmd_ls);
