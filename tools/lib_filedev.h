/* cow_bdev over a regular file or a block device, and a hosted cow_env, for the host tools. */
#ifndef TOOLS_LIB_FILEDEV_H
#define TOOLS_LIB_FILEDEV_H
#include "../cow/cow.h"

struct filedev {
	struct cow_bdev bdev;
	int fd;
	const char *path;
};

/* 0, or -E_NOENT/-E_IO with errno telling why. Files present 512-byte sectors; block devices
 * their own. No model, serial or WWN: identity rests on size, sector size and content. */
int filedev_open(struct filedev *d, const char *path, int writable);
void filedev_close(struct filedev *d);
extern const struct cow_env host_env;
#endif
