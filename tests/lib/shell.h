/* Shell commands for the host tests that check their results with outside tools (mtools,
 * fsck.fat, ntfs-3g): a formatted command line run through system(). */
#ifndef TESTS_SHELL_H
#define TESTS_SHELL_H

/* The command's exit status, or -1 when it could not run or did not exit (a signal). */
int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
