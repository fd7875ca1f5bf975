/* ntgrep: the files of the NTFS volumes of an image or a cow whose paths match globs, with
 * size, extents and how much of each is rescued, bad or not yet read; or their domain. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lib_cli.h"
#include "lib_ntvol.h"
#include "../lib/errors.h"

static const char *const usage_text =
	"usage: ntgrep [--domain] [--map MAPFILE] <image | cow [source]> <glob>...\n"
	"  Lists the files of every NTFS volume whose path matches a glob: '*' and '?' within a\n"
	"  path component, case-insensitive; a glob without '/' matches the file name anywhere\n"
	"  (\"*.jpg\"), one with '/' the whole path (\"/Users/*/Documents/*\").\n"
	"  Each file: its path, size, and bytes rescued / bad / not tried (from the cow's map, or\n"
	"  from MAPFILE for an image), then its extents (disk byte offset, length).\n"
	"  --domain    print a ddrescue domain mapfile instead: the metadata needed to find the\n"
	"              files (boot sectors, $MFT, directory indexes) and the files' data\n"
	"Exit status: 0 files found, 1 none matched, 2 usage or I/O error.\n";

struct grep_ctx {
	struct ntdisk *d;
	struct ntfs_vol *v;
	unsigned vol;
	uint64_t files;
	int domain;
	struct rangeset *set;
};

static int show_file(void *ctx, const struct ntfs_file *f)
{
	struct grep_ctx *g = ctx;
	g->files++;
	uint64_t count[256] = { 0 }, on_disk = 0;
	for (uint32_t i = 0; i < f->nruns; i++)
		if (f->runs[i].lcn != NTFS_SPARSE) {
			uint64_t off = g->v->base + f->runs[i].lcn * g->v->cluster, len = f->runs[i].len * g->v->cluster;
			ntdisk_states(g->d, off, len, count);
			on_disk += len;
		}
	uint64_t other = count['*'] + count['/'];
	printf("%s\t%llu bytes\t%u extents\trescued %llu\tbad %llu\tnon-tried %llu", f->path,
	       (unsigned long long)f->st.size, f->nruns, (unsigned long long)count['+'],
	       (unsigned long long)count['-'], (unsigned long long)count['?']);
	if (other)
		printf("\tnon-trimmed/scraped %llu", (unsigned long long)other);
	if (f->st.resident && f->st.size)
		printf("\t(resident in MFT record %llu)", (unsigned long long)f->st.mft);
	printf("\n");
	for (uint32_t i = 0; i < f->nruns; i++) {
		if (f->runs[i].lcn == NTFS_SPARSE)
			printf("  hole        vcn %llu +%llu clusters\n", (unsigned long long)f->runs[i].vcn,
			       (unsigned long long)f->runs[i].len);
		else
			printf("  extent      0x%llX +0x%llX\n",
			       (unsigned long long)(g->v->base + f->runs[i].lcn * g->v->cluster),
			       (unsigned long long)(f->runs[i].len * g->v->cluster));
	}
	(void)on_disk;
	return 0;
}

static int count_file(void *ctx, const struct ntfs_file *f)
{
	(void)f;
	((struct grep_ctx *)ctx)->files++;
	return 0;
}

int main(int argc, char **argv)
{
	int domain = 0;
	const char *map = NULL;
	static const struct option longs[] = {
		{ "domain", no_argument, NULL, 'd' }, { "map", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	for (int c; (c = cli_getopt("ntgrep", argc, argv, "", longs)) != -1;) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			return 0;
		} else if (c == 'd') {
			domain = 1;
		} else if (c == 'm') {
			map = optarg;
		} else {
			fputs(usage_text, stderr);
			return 2;
		}
	}
	int a = optind;
	if (argc - a < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	const char *disk = argv[a++], *src = NULL;
	/* A cow's second argument is its source when one more argument (a glob) follows. */
	if (argc - a >= 2 && ntdisk_is_cow(disk)) {
		FILE *f = fopen(argv[a], "rb");
		if (f) {
			fclose(f);
			src = argv[a++];
		}
	}
	struct ntdisk d;
	if (ntdisk_open(&d, "ntgrep", disk, src, map) < 0)
		return 2;
	struct part parts[64];
	struct parttab t;
	unsigned n;
	int rc = ntdisk_volumes(&d, "ntgrep", parts, 64, &n, &t);
	if (rc == 0 && n == 0) {
		fprintf(stderr, "ntgrep: %s: no NTFS volume found\n", disk);
		rc = -E_NOENT;
	}
	struct rangeset set = { 0 };
	uint64_t files = 0;
	for (unsigned i = 0; i < n && rc == 0; i++) {
		struct ntfs_vol v;
		int orc = ntfs_open(&v, &host_env, ntdisk_read, &d, parts[i].start, parts[i].size);
		if (orc < 0) {
			fprintf(stderr, "ntgrep: volume at 0x%llX: %s\n", (unsigned long long)parts[i].start, err_str(orc));
			continue;
		}
		v.say = ntdisk_say;
		v.say_ctx = "ntgrep";
		struct grep_ctx g = { &d, &v, i, 0, domain, &set };
		for (int k = a; k < argc && rc == 0; k++) {
			if (domain) {
				rc = ntfs_domain(&v, argv[k], rangeset_add_domain, &set);
				if (rc == 0)
					rc = ntfs_walk(&v, argv[k], count_file, &g);
			} else {
				rc = ntfs_walk(&v, argv[k], show_file, &g);
			}
		}
		if (rc < 0)
			fprintf(stderr, "ntgrep: volume at 0x%llX: %s\n", (unsigned long long)parts[i].start, err_str(rc));
		files += g.files;
		ntfs_close(&v);
	}
	if (rc == 0 && domain) {
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "ntgrep --domain %s ...", disk);
		rangeset_normalize(&set);
		rc = rangeset_write_domain(&set, d.size, cmd, stdout);
	}
	rangeset_free(&set);
	ntdisk_close(&d);
	if (rc < 0)
		return 2;
	return files ? 0 : 1;
}
