/* libFuzzer target: the mapfile reader, in both modes, must never crash or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include "../../rescue/mapfile.h"

static int count(void *ctx, const struct mapfile_block *b)
{
	(void)b;
	(*(unsigned *)ctx)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[96];
	struct mapfile_status st;
	unsigned n = 0;
	mapfile_read((const char *)data, size, MAPFILE_MAP, &st, count, &n, err, sizeof(err));
	mapfile_read((const char *)data, size, MAPFILE_DOMAIN, &st, count, &n, err, sizeof(err));
	mapfile_read((const char *)data, size, MAPFILE_MAP, NULL, NULL, NULL, err, 0);
	return 0;
}
