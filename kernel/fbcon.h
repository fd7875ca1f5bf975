/* The screen: a text grid with scroll-back on the UEFI framebuffer, mirroring the console's
 * output, with a status line of the running jobs at the bottom. Writing only changes the grid;
 * a poller draws the cells that changed, a few milliseconds at a time, so printing never waits
 * for the screen and scrolling costs one redraw per frame, not one per line. */
#ifndef KERNEL_FBCON_H
#define KERNEL_FBCON_H
#include <stddef.h>
#include <stdint.h>
void fbcon_init(void);                 /* after mem_init: the grid is allocated */
void fbcon_write(const char *s, size_t n);
int fbcon_active(void);
void fbcon_flush(void);                /* draws everything now (power-off, exception report) */
void fbcon_scrollback(int pages);      /* + back in history, - towards the newest line */
/* Severity 1 (warning) or 2 (error) for the cursor's line; the cursor's line number; the same
 * for the lines completed since line l (console.h's console_mark*). */
void fbcon_mark(int sev);
uint64_t fbcon_line(void);
void fbcon_mark_since(uint64_t l, int sev);

struct fbcon_info {
	uint32_t width, height, cols, rows, scale, history;
	uint64_t frames, cells_drawn, draw_us, lines;
};
void fbcon_get_info(struct fbcon_info *fi);
/* Who fills the status line: returns 1 and a line for the k-th job slot that has a job
 * (kernel/rescue_cmds.c), 0 for an empty slot; *alarm is set when it has bad areas or failed. */
int job_status_line(int k, char *out, size_t n, int *alarm);
#endif
