/* ntmap: a ddrescue domain mapfile ('+' = used) of the NTFS volumes of an image or a cow: the
 * partition tables, boot sectors, $MFT, indexes, file data and every cluster $Bitmap marks used. */
#include <stdio.h>
#include <string.h>
#include "lib_cli.h"
#include "lib_ntvol.h"
#include "../lib/errors.h"

static const char *const usage_text =
	"usage: ntmap <image | cow [source]>\n"
	"  Prints on stdout a GNU ddrescue domain mapfile of the disk: '+' for the partition\n"
	"  tables and every used cluster of each NTFS volume (from its $Bitmap, plus the boot\n"
	"  sectors, $MFT, $MFTMirr, directory indexes and file data), '?' elsewhere. Use it as\n"
	"  ddrescue's --domain-mapfile to rescue only what the file system uses.\n"
	"  A cow without its source can only be read where it holds rescued data.\n"
	"Exit status: 0 done, 1 damaged structures were skipped (the map may miss their\n"
	"clusters) or no NTFS volume, 2 usage or I/O error.\n";

int main(int argc, char **argv)
{
	int st = cli_operands("ntmap", argc, argv, usage_text, 1, 2);
	if (st >= 0)
		return st;
	argc -= optind - 1;   /* argv[1..] are the disk (and its source) from here on */
	argv += optind - 1;
	struct ntdisk d;
	if (ntdisk_open(&d, "ntmap", argv[1], argc == 3 ? argv[2] : NULL, NULL) < 0)
		return 2;
	struct part parts[64];
	struct parttab t;
	unsigned n;
	int rc = ntdisk_volumes(&d, "ntmap", parts, 64, &n, &t), findings = 0;
	struct rangeset set = { 0 };
	if (rc == 0 && n == 0) {
		fprintf(stderr, "ntmap: %s: no NTFS volume found\n", argv[1]);
		findings = 1;
	}
	/* The tables themselves (MBR, EBRs, the GPT at both ends), as the parser located them. */
	for (unsigned i = 0; i < t.nareas && n && rc == 0; i++)
		rc = rangeset_add(&set, t.area[i].start, t.area[i].size);
	for (unsigned i = 0; i < n && rc == 0; i++) {
		struct ntfs_vol v;
		int orc = ntfs_open(&v, &host_env, ntdisk_read, &d, parts[i].start, parts[i].size);
		if (orc < 0) {
			fprintf(stderr, "ntmap: volume at 0x%llX: %s\n", (unsigned long long)parts[i].start, err_str(orc));
			findings = 1;
			continue;
		}
		v.say = ntdisk_say;
		v.say_ctx = "ntmap";
		rc = ntfs_domain(&v, NULL, rangeset_add_domain, &set);
		if (rc < 0)
			fprintf(stderr, "ntmap: volume at 0x%llX: %s\n", (unsigned long long)parts[i].start, err_str(rc));
		if (v.damaged)
			findings = 1;
		ntfs_close(&v);
	}
	if (rc == 0) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "ntmap %s%s%s", argv[1], argc == 3 ? " " : "", argc == 3 ? argv[2] : "");
		rangeset_normalize(&set);
		rc = rangeset_write_domain(&set, d.size, cmd, stdout);
		if (rc < 0)
			fprintf(stderr, "ntmap: writing the mapfile: %s\n", err_str(rc));
	}
	rangeset_free(&set);
	ntdisk_close(&d);
	return rc < 0 ? 2 : findings;
}
