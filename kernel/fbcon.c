/* The framebuffer console: the firmware's glyphs (captured at boot) drawn on the GOP
 * framebuffer, light grey on black, scrolling by moving the pixel rows up. */
#include "fbcon.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"

static volatile uint32_t *fb;
static uint32_t pitch, cols, rows, cx, cy, gw, gh;
static const struct boot_info *bi;

#define FG 0x00c0c0c0u
#define BG 0x00000000u

void fbcon_init(void)
{
	bi = boot_info_get();
	if (!bi->fb.base || !bi->font_h || !bi->font_w)
		return;
	gw = bi->font_w;
	gh = bi->font_h;
	pitch = bi->fb.pitch_pixels;
	cols = bi->fb.width / gw;
	rows = bi->fb.height / gh;
	if (!cols || !rows)
		return;
	fb = (volatile uint32_t *)(uintptr_t)bi->fb.base;
	for (uint32_t y = 0; y < bi->fb.height; y++)
		for (uint32_t x = 0; x < bi->fb.width; x++)
			fb[y * pitch + x] = BG;
}

int fbcon_active(void)
{
	return fb != NULL;
}

static void draw(uint32_t col, uint32_t row, char c)
{
	const uint8_t *g = c >= 32 && c < 127 ? bi->font[c - 32] : NULL;
	volatile uint32_t *p = fb + (uint64_t)row * gh * pitch + (uint64_t)col * gw;
	for (uint32_t y = 0; y < gh; y++, p += pitch)
		for (uint32_t x = 0; x < gw; x++)
			p[x] = g && (g[y] & (0x80 >> x)) ? FG : BG;
}

static void scroll(void)
{
	uint64_t line = (uint64_t)gh * pitch;
	memmove((void *)fb, (const void *)(fb + line), (rows - 1) * line * 4);
	for (uint64_t i = (rows - 1) * line; i < rows * line; i++)
		fb[i] = BG;
}

static void newline(void)
{
	cx = 0;
	if (++cy == rows) {
		scroll();
		cy = rows - 1;
	}
}

void fbcon_write(const char *s, size_t n)
{
	if (!fb)
		return;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\n')
			newline();
		else if (c == '\r')
			cx = 0;
		else if (c == '\b')
			cx = cx ? cx - 1 : 0;
		else if (c >= 32 && c < 127) {
			draw(cx, cy, c);
			if (++cx == cols)
				newline();
		}
	}
}
