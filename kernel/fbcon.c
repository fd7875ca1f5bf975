/* The framebuffer console: the firmware's glyphs (captured at boot, doubled on screens wider
 * than FBCON_SCALE_WIDTH) drawn from a ring of text lines. Each drawn cell is remembered, so a
 * frame redraws only the cells whose character or colour changed. */
#include "fbcon.h"
#include "mem.h"
#include "task.h"
#include "time.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"

#define FBCON_SCALE_WIDTH 2000     /* wider screens get 2x glyphs */
#define HISTORY_LINES 2000         /* scroll-back */
#define MAX_COLS 512
#define FRAME_US 40000             /* at most 25 frames a second */
#define DRAW_BUDGET_US 4000        /* one poll draws at most this long, then lets the jobs run */
#define STATUS_EVERY_US 500000     /* the status line is refreshed twice a second */
#define STATUS_ROWS_MAX 4
#define MAX_JOB_SLOTS 8

enum { A_TEXT, A_ERROR, A_WARN, A_STATUS, A_ALARM, A_HEAD, A_NCOLOURS };
/* Foreground, background as 0xRRGGBB. */
static const uint32_t palette[A_NCOLOURS][2] = {
	[A_TEXT] = { 0xc0c0c0, 0x000000 },
	[A_ERROR] = { 0xff5050, 0x000000 },
	[A_WARN] = { 0xffd040, 0x000000 },
	[A_STATUS] = { 0xffffff, 0x204080 },
	[A_ALARM] = { 0xffffff, 0xa02020 },
	[A_HEAD] = { 0xffffff, 0x000000 },
};
static uint32_t colours[A_NCOLOURS][2];   /* in the framebuffer's byte order */

static volatile uint32_t *fb;
static const struct boot_info *bi;
static uint32_t pitch, cols, rows, gw, gh, scale, cw, ch;

/* The text: line L (counted from the first ever) at L % HISTORY_LINES. */
static uint8_t *text;                   /* HISTORY_LINES * cols */
static uint8_t line_attr[HISTORY_LINES];
static uint64_t nlines = 1;             /* the cursor's line is nlines - 1 */
static uint32_t cx;
static int esc;                         /* inside an escape sequence: skipped */
static uint64_t back;                   /* lines scrolled back */
static uint8_t cur_mark = 0;            /* A_TEXT, or the severity a writer gave the cursor's line */

static uint16_t *shown;                 /* rows * cols: what the framebuffer holds */
static char status[STATUS_ROWS_MAX][MAX_COLS + 1];
static uint8_t status_attr[STATUS_ROWS_MAX];
static uint32_t nstatus = 1;
static int dirty, in_frame;
static uint32_t frame_row;
static uint64_t frame_start, last_status;
static struct fbcon_info stats;

static uint32_t fb_colour(uint32_t rgb)
{
	if (bi->fb.bgr)
		return rgb;
	return (rgb & 0xff) << 16 | (rgb & 0xff00) | (rgb >> 16 & 0xff);
}

static uint8_t *line_text(uint64_t l)
{
	return text + (l % HISTORY_LINES) * cols;
}

static void new_line(void)
{
	uint64_t l = nlines++;
	memset(line_text(l + 1), ' ', cols);
	line_attr[(l + 1) % HISTORY_LINES] = A_TEXT;
	cur_mark = A_TEXT;
	cx = 0;
}

void fbcon_init(void)
{
	bi = boot_info_get();
	if (!bi->fb.base || !bi->font_h || !bi->font_w)
		return;
	gw = bi->font_w;
	gh = bi->font_h;
	scale = bi->fb.width > FBCON_SCALE_WIDTH ? 2 : 1;
	cw = gw * scale;
	ch = gh * scale;
	pitch = bi->fb.pitch_pixels;
	cols = bi->fb.width / cw;
	rows = bi->fb.height / ch;
	if (cols > MAX_COLS)
		cols = MAX_COLS;
	if (!cols || rows < 2)
		return;
	size_t tbytes = (size_t)HISTORY_LINES * cols, sbytes = (size_t)rows * cols * 2;
	text = page_alloc((tbytes + PAGE_SIZE - 1) / PAGE_SIZE);
	shown = page_alloc((sbytes + PAGE_SIZE - 1) / PAGE_SIZE);
	if (!text || !shown)
		return;
	memset(text, ' ', tbytes);
	for (size_t i = 0; i < (size_t)rows * cols; i++)
		shown[i] = ' ';
	for (int a = 0; a < A_NCOLOURS; a++)
		for (int k = 0; k < 2; k++)
			colours[a][k] = fb_colour(palette[a][k]);
	fb = (volatile uint32_t *)(uintptr_t)bi->fb.base;
	for (uint32_t y = 0; y < bi->fb.height; y++)
		for (uint32_t x = 0; x < bi->fb.width; x++)
			fb[y * pitch + x] = colours[A_TEXT][1];
	dirty = 1;
}

int fbcon_active(void)
{
	return fb != NULL;
}

/* How far back the history goes: its oldest line on the top text row. */
static uint64_t max_back(void)
{
	uint64_t kept = nlines < HISTORY_LINES - 1 ? nlines : HISTORY_LINES - 1, trows = rows - nstatus;
	return kept > trows ? kept - trows : 0;
}

/* Errors and warnings stand out: the shell's and the event log's own markers. */
static uint8_t classify(const uint8_t *t)
{
	char s[MAX_COLS + 1];
	memcpy(s, t, cols);
	s[cols] = '\0';
	/* An event line: "[   12.345] error: ..." */
	const char *tag = s[0] == '[' ? strchr(s, ']') : NULL;
	tag = tag && tag[1] == ' ' ? tag + 2 : "";
	if (!strncmp(s, "error:", 6) || !strncmp(tag, "error: ", 7) || !strncmp(s, "script failed", 13) ||
	    !strncmp(s, "*** CPU EXCEPTION", 17) || !strncmp(s, "FAIL", 4))
		return A_ERROR;
	if (!strncmp(s, "warning:", 8) || !strncmp(tag, "warning: ", 9) || !strncmp(s, "(console:", 9))
		return A_WARN;
	return A_TEXT;
}

/* The stronger of two colours (error over warning over text). */
static uint8_t stronger(uint8_t a, uint8_t b)
{
	return a == A_ERROR || b == A_ERROR ? A_ERROR : a == A_WARN || b == A_WARN ? A_WARN : A_TEXT;
}

static uint8_t sev_attr(int sev)
{
	return sev >= 2 ? A_ERROR : sev == 1 ? A_WARN : A_TEXT;
}

/* The cursor's line: its text's own markers, or what its writer said it is. */
static uint8_t cursor_attr(void)
{
	return stronger(classify(line_text(nlines - 1)), cur_mark);
}

void fbcon_mark(int sev)
{
	cur_mark = stronger(cur_mark, sev_attr(sev));
	dirty = 1;
}

uint64_t fbcon_line(void)
{
	return nlines - 1;
}

void fbcon_mark_since(uint64_t l, int sev)
{
	if (!fb)
		return;
	if (l + HISTORY_LINES <= nlines)
		l = nlines - HISTORY_LINES + 1;   /* older ones have left the history */
	for (; l < nlines - 1; l++) {
		const uint8_t *t = line_text(l);
		if (t[0] == '[')   /* an event of a job, printed meanwhile: its own level */
			continue;
		uint8_t *a = &line_attr[l % HISTORY_LINES];
		*a = stronger(*a, sev_attr(sev));
	}
	dirty = 1;
}

void fbcon_write(const char *s, size_t n)
{
	if (!fb)
		return;
	uint64_t first = nlines;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (esc) {
			/* ESC [ parameters, then a final byte from @ to ~. */
			if (esc == 1)
				esc = c == '[' ? 2 : 0;
			else if (c >= 0x40 && c <= 0x7e)
				esc = 0;
			continue;
		}
		if (c == 0x1b) {
			esc = 1;
		} else if (c == '\n') {
			line_attr[(nlines - 1) % HISTORY_LINES] = cursor_attr();
			new_line();
		} else if (c == '\r') {
			cx = 0;
		} else if (c == '\b') {
			cx = cx ? cx - 1 : 0;
		} else if (c == '\t' || (c >= 32 && c < 127)) {
			if (cx >= cols) {   /* a long line wraps, keeping its writer's mark */
				uint8_t mark = cur_mark;
				line_attr[(nlines - 1) % HISTORY_LINES] = cursor_attr();
				new_line();
				cur_mark = mark;
			}
			if (c != '\t')
				line_text(nlines - 1)[cx++] = (uint8_t)c;
			else
				do
					line_text(nlines - 1)[cx++] = ' ';
				while (cx % 8 && cx < cols);
		}
		if (cx > cols)
			cx = cols;
	}
	if (back) {   /* keep the page being read where it is while output goes on */
		back += nlines - first;
		if (back > max_back())
			back = max_back();
	}
	dirty = 1;
}

void fbcon_scrollback(int pages)
{
	if (!fb)
		return;
	int64_t b = (int64_t)back + (int64_t)pages * (rows - nstatus - 1);
	if (b > (int64_t)max_back())
		b = (int64_t)max_back();
	if (b < 0)
		b = 0;
	back = (uint64_t)b;
	dirty = 1;
}

static void draw_cell(uint32_t row, uint32_t col, uint16_t cell)
{
	uint8_t c = cell & 0xff, a = cell >> 8;
	const uint8_t *g = c > 32 && c < 127 ? bi->font[c - 32] : NULL;
	uint32_t fg = colours[a][0], bg = colours[a][1];
	volatile uint32_t *p = fb + (uint64_t)row * ch * pitch + (uint64_t)col * cw;
	for (uint32_t y = 0; y < ch; y++, p += pitch) {
		uint8_t bits = g ? g[y / scale] : 0;
		if (!bits) {
			for (uint32_t x = 0; x < cw; x++)
				p[x] = bg;
			continue;
		}
		for (uint32_t x = 0; x < cw; x++)
			p[x] = bits & (0x80 >> (x / scale)) ? fg : bg;
	}
	stats.cells_drawn++;
}

/* What row r of the screen should hold, as cells of character | colour << 8. */
static void row_cells(uint32_t r, uint16_t *out)
{
	uint32_t trows = rows - nstatus;
	if (r >= trows) {
		const char *s = status[r - trows];
		uint16_t a = (uint16_t)status_attr[r - trows] << 8;
		size_t len = strlen(s);
		for (uint32_t x = 0; x < cols; x++)
			out[x] = a | (uint8_t)(x < len ? s[x] : ' ');
		return;
	}
	uint64_t bottom = nlines - 1 - back;          /* the line on the last text row */
	uint64_t first = bottom + 1 >= trows ? bottom + 1 - trows : 0;
	uint64_t l = first + r;
	if (l > bottom || l + HISTORY_LINES <= nlines - 1) {
		for (uint32_t x = 0; x < cols; x++)
			out[x] = ' ';
		return;
	}
	const uint8_t *t = line_text(l);
	uint16_t a = (uint16_t)(l == nlines - 1 ? cursor_attr() : line_attr[l % HISTORY_LINES]) << 8;
	for (uint32_t x = 0; x < cols; x++)
		out[x] = a | t[x];
}

/* Draws rows until the budget is spent; 1 when the frame is complete. */
static int draw_rows(uint64_t budget_us)
{
	uint64_t t0 = time_now_us();
	static uint16_t want[MAX_COLS];
	while (frame_row < rows) {
		row_cells(frame_row, want);
		uint16_t *have = shown + (size_t)frame_row * cols;
		for (uint32_t x = 0; x < cols; x++)
			if (want[x] != have[x]) {
				draw_cell(frame_row, x, want[x]);
				have[x] = want[x];
			}
		frame_row++;
		if (budget_us && time_now_us() - t0 >= budget_us)
			break;
	}
	stats.draw_us += time_now_us() - t0;
	return frame_row == rows;
}

static void update_status(void)
{
	uint32_t n = 0;
	for (int k = 0; k < MAX_JOB_SLOTS && n < STATUS_ROWS_MAX; k++) {
		char line[MAX_COLS + 1];
		int alarm = 0;
		if (!job_status_line(k, line, sizeof(line), &alarm))
			continue;
		fmt_snprintf(status[n], sizeof(status[n]), " %s", line);
		status_attr[n++] = alarm ? A_ALARM : A_STATUS;
	}
	if (back && n < STATUS_ROWS_MAX) {
		fmt_snprintf(status[n], sizeof(status[n]), " scroll-back: %llu lines up (Shift+PgDn goes forward)",
			     (unsigned long long)back);
		status_attr[n++] = A_STATUS;
	}
	if (!n) {
		fmt_snprintf(status[n], sizeof(status[n]),
			     " no jobs running | help lists the commands | Shift+PgUp/PgDn scroll back");
		status_attr[n++] = A_STATUS;
	}
	if (n != nstatus)
		nstatus = n;
	dirty = 1;
}

static void frame(int whole)
{
	if (!in_frame) {
		in_frame = 1;
		frame_row = 0;
		dirty = 0;
		frame_start = time_now_us();
	}
	if (draw_rows(whole ? 0 : DRAW_BUDGET_US)) {
		in_frame = 0;
		stats.frames++;
	}
}

static void fbcon_poll(void)
{
	if (!fb)
		return;
	uint64_t now = time_now_us();
	if (now - last_status >= STATUS_EVERY_US) {
		last_status = now;
		update_status();
	}
	if (in_frame || (dirty && now - frame_start >= FRAME_US))
		frame(0);
}
POLLER(fbcon, fbcon_poll);

void fbcon_flush(void)
{
	if (!fb)
		return;
	update_status();
	in_frame = 0;
	frame(1);
}

void fbcon_get_info(struct fbcon_info *fi)
{
	*fi = stats;
	if (!fb)
		return;
	fi->width = bi->fb.width;
	fi->height = bi->fb.height;
	fi->cols = cols;
	fi->rows = rows;
	fi->scale = scale;
	fi->history = HISTORY_LINES;
	fi->lines = nlines;
}
