/* A line editor as a pure state machine: fed one input byte at a time, it edits the line and
 * says what to echo (so it can be tested on the host with no terminal). */
#ifndef KERNEL_LIB_LINEEDIT_H
#define KERNEL_LIB_LINEEDIT_H

#define LE_LINE 256
#define LE_HIST 16

struct lineedit {
	char buf[LE_LINE];
	int len, pos;
	char hist[LE_HIST][LE_LINE];
	int nhist;       /* entries stored (up to LE_HIST), newest at (head-1) */
	int head;
	int browse;      /* 0 = editing a new line, k = showing the k-th newest entry */
	int esc;         /* escape-sequence state */
	int esc_arg;     /* the first number of a CSI sequence (ESC [ 3 ~ is Delete) */
};

enum le_result { LE_MORE, LE_ENTER, LE_CANCEL };

void le_init(struct lineedit *le);
void le_start(struct lineedit *le);   /* begin a new, empty line */
/* Feeds one byte; appends what to echo to out (NUL-terminated, cap bytes at most). */
enum le_result le_feed(struct lineedit *le, int c, char *out, int cap);
/* Adds the finished line to the history (skips empty lines and repeats). */
void le_remember(struct lineedit *le);

#endif
