/* ntfind-bad: the files of the NTFS volumes of a rescue (a cow, or an image with its ddrescue
 * mapfile) whose data touches bad or not yet rescued areas, and the MFT records lost with them. */
#include <stdio.h>
#include <string.h>
#include "lib_cli.h"
#include "lib_ntvol.h"
#include "../lib/errors.h"

static const char *const usage_text =
	"usage: ntfind-bad <image | cow> [mapfile]\n"
	"  Lists the files whose data lies in areas the rescue has not finished: bad ('-'),\n"
	"  non-tried ('?'), non-trimmed ('*') or non-scraped ('/'), one line each:\n"
	"    <path> <TAB> <size> bytes <TAB> bad N <TAB> non-tried N <TAB> non-trimmed/scraped N\n"
	"  then the directories whose index does (\"<path>/ <TAB> directory index <TAB> ...\": their\n"
	"  listings may miss entries), and, as 'damaged: ...' lines, the MFT records and indexes\n"
	"  that could not be read (their files cannot be named). The states come from the cow's\n"
	"  map, or from the mapfile, which an image needs (its unfinished areas are never read).\n"
	"Exit status: 0 no file touches an unfinished area, 1 some do (or metadata is damaged),\n"
	"2 usage or I/O error.\n";

struct find_ctx { struct ntdisk *d; struct ntfs_vol *v; uint64_t files; };

/* Prints one line for a file or directory index whose runs touch an unfinished area; `what`
 * is "<size> bytes" for a file and "directory index" for a directory. */
static int report_runs(struct find_ctx *x, const struct ntfs_file *f, const char *suffix, const char *what)
{
	uint64_t count[256] = { 0 };
	for (uint32_t i = 0; i < f->nruns; i++)
		if (f->runs[i].lcn != NTFS_SPARSE)
			ntdisk_states(x->d, x->v->base + f->runs[i].lcn * x->v->cluster, f->runs[i].len * x->v->cluster,
				      count);
	uint64_t bad = count['-'], nontried = count['?'], other = count['*'] + count['/'];
	if (!bad && !nontried && !other)
		return 0;
	x->files++;
	printf("%s%s\t%s\tbad %llu\tnon-tried %llu\tnon-trimmed/scraped %llu\n", f->path, suffix, what,
	       (unsigned long long)bad, (unsigned long long)nontried, (unsigned long long)other);
	return 0;
}

static int check_file(void *ctx, const struct ntfs_file *f)
{
	char size[32];
	snprintf(size, sizeof(size), "%llu bytes", (unsigned long long)f->st.size);
	return report_runs(ctx, f, "", size);
}

/* A directory whose index touches an unfinished area: its listing may miss entries (the
 * files themselves are still found through the MFT). */
static int check_dir(void *ctx, const struct ntfs_file *f)
{
	return report_runs(ctx, f, strcmp(f->path, "/") ? "/" : "", "directory index");
}

static void say_damaged(void *ctx, const char *msg)
{
	(void)ctx;
	printf("damaged: %s\n", msg);
}

int main(int argc, char **argv)
{
	int st = cli_operands("ntfind-bad", argc, argv, usage_text, 1, 2);
	if (st >= 0)
		return st;
	argc -= optind - 1;   /* argv[1..] are the disk (and its mapfile) from here on */
	argv += optind - 1;
	struct ntdisk d;
	if (ntdisk_open(&d, "ntfind-bad", argv[1], NULL, argc == 3 ? argv[2] : NULL) < 0)
		return 2;
	if (!d.cow && argc < 3) {
		fprintf(stderr, "ntfind-bad: %s is an image: give its ddrescue mapfile\n", argv[1]);
		ntdisk_close(&d);
		return 2;
	}
	struct part parts[64];
	struct parttab t;
	unsigned n;
	int rc = ntdisk_volumes(&d, "ntfind-bad", parts, 64, &n, &t);
	uint64_t files = 0, damaged = 0;
	if (rc == 0 && n == 0) {
		fprintf(stderr, "ntfind-bad: %s: no readable NTFS volume found\n", argv[1]);
		rc = -E_NOENT;
	}
	for (unsigned i = 0; i < n && rc == 0; i++) {
		struct ntfs_vol v;
		int orc = ntfs_open(&v, &host_env, ntdisk_read, &d, parts[i].start, parts[i].size);
		if (orc < 0) {
			printf("damaged: volume at 0x%llX: %s\n", (unsigned long long)parts[i].start, err_str(orc));
			damaged++;
			continue;
		}
		v.say = say_damaged;
		struct find_ctx x = { &d, &v, 0 };
		rc = ntfs_walk(&v, NULL, check_file, &x);
		if (rc == 0)
			rc = ntfs_walk_dirs(&v, check_dir, &x);
		if (rc < 0)
			fprintf(stderr, "ntfind-bad: volume at 0x%llX: %s\n", (unsigned long long)parts[i].start, err_str(rc));
		files += x.files;
		damaged += v.damaged;
		ntfs_close(&v);
	}
	if (rc == 0)
		fprintf(stderr, "ntfind-bad: %llu files touch unfinished areas; %llu damaged structures\n",
			(unsigned long long)files, (unsigned long long)damaged);
	ntdisk_close(&d);
	return rc < 0 ? 2 : files || damaged ? 1 : 0;
}
