/* Line editing: insert, backspace, Delete, Ctrl-U, Ctrl-C, left/right, Home/End, history with
 * up/down. Terminal
 * output is plain VT100: backspaces to move left, rewriting the tail after an edit. */
#include "lineedit.h"
#include "port.h"

struct sink { char *p; int cap, n; };

static void emit(struct sink *s, const char *t, int n)
{
	for (int i = 0; i < n && s->n + 1 < s->cap; i++)
		s->p[s->n++] = t[i];
	s->p[s->n] = '\0';
}

static void emit_c(struct sink *s, char c)
{
	emit(s, &c, 1);
}

void le_init(struct lineedit *le)
{
	memset(le, 0, sizeof(*le));
}

void le_start(struct lineedit *le)
{
	le->len = le->pos = 0;
	le->buf[0] = '\0';
	le->browse = 0;
	le->esc = 0;
}

/* Redraws from the cursor to the end, erases `extra` stale cells, and returns the cursor. */
static void redraw_tail(struct lineedit *le, struct sink *s, int extra)
{
	emit(s, le->buf + le->pos, le->len - le->pos);
	for (int i = 0; i < extra; i++)
		emit_c(s, ' ');
	for (int i = 0; i < le->len - le->pos + extra; i++)
		emit_c(s, '\b');
}

static void replace_line(struct lineedit *le, struct sink *s, const char *text)
{
	int old = le->len;
	while (le->pos > 0) {
		emit_c(s, '\b');
		le->pos--;
	}
	int n = (int)strlen(text);
	memcpy(le->buf, text, (size_t)n + 1);
	le->len = n;
	le->pos = 0;
	redraw_tail(le, s, old > n ? old - n : 0);
	emit(s, le->buf, n);
	le->pos = n;
}

static const char *hist_entry(struct lineedit *le, int k)
{
	return le->hist[((le->head - k) % LE_HIST + LE_HIST) % LE_HIST];
}

enum le_result le_feed(struct lineedit *le, int c, char *out, int cap)
{
	struct sink s = { out, cap, 0 };
	if (cap > 0)
		out[0] = '\0';

	if (le->esc == 1) {
		/* CSI (ESC [) or SS3 (ESC O, which some terminals send for Home/End and arrows). */
		le->esc = c == '[' ? 2 : c == 'O' ? 3 : 0;
		le->esc_arg = 0;
		return LE_MORE;
	}
	if (le->esc == 2 && ((c >= '0' && c <= '9') || c == ';')) {
		if (c == ';')
			le->esc = 4;   /* modifiers after the first number: ignored */
		else if (le->esc_arg < 1000)   /* key numbers are small; a longer one is no key we know */
			le->esc_arg = le->esc_arg * 10 + (c - '0');
		return LE_MORE;
	}
	if (le->esc == 4 && ((c >= '0' && c <= '9') || c == ';'))
		return LE_MORE;
	if (le->esc) {
		le->esc = 0;
		if (c == '~')
			c = le->esc_arg == 1 || le->esc_arg == 7 ? 'H' : le->esc_arg == 4 || le->esc_arg == 8 ? 'F'
			  : le->esc_arg == 3 ? 'P' : 0;
		if (c == 'D' && le->pos > 0) {
			le->pos--;
			emit_c(&s, '\b');
		} else if (c == 'C' && le->pos < le->len) {
			emit_c(&s, le->buf[le->pos++]);
		} else if (c == 'H') {
			for (; le->pos > 0; le->pos--)
				emit_c(&s, '\b');
		} else if (c == 'F') {
			emit(&s, le->buf + le->pos, le->len - le->pos);
			le->pos = le->len;
		} else if (c == 'P' && le->pos < le->len) {
			memmove(le->buf + le->pos, le->buf + le->pos + 1, (size_t)(le->len - le->pos));
			le->len--;
			redraw_tail(le, &s, 1);
		} else if (c == 'A' && le->browse < le->nhist) {
			le->browse++;
			replace_line(le, &s, hist_entry(le, le->browse));
		} else if (c == 'B' && le->browse > 0) {
			le->browse--;
			replace_line(le, &s, le->browse ? hist_entry(le, le->browse) : "");
		}
		return LE_MORE;
	}
	switch (c) {
	case 0x1b:
		le->esc = 1;
		return LE_MORE;
	case '\r':
	case '\n':
		emit(&s, "\r\n", 2);
		return LE_ENTER;
	case 0x03:   /* Ctrl-C: abandon the line */
		emit(&s, "^C\r\n", 4);
		le_start(le);
		return LE_CANCEL;
	case 0x15:   /* Ctrl-U: erase the whole line */
		replace_line(le, &s, "");
		return LE_MORE;
	case 0x08:
	case 0x7f:
		if (le->pos == 0)
			return LE_MORE;
		memmove(le->buf + le->pos - 1, le->buf + le->pos, (size_t)(le->len - le->pos + 1));
		le->pos--;
		le->len--;
		emit_c(&s, '\b');
		redraw_tail(le, &s, 1);
		return LE_MORE;
	}
	if (c < 0x20 || c > 0x7e || le->len + 1 >= LE_LINE)
		return LE_MORE;
	memmove(le->buf + le->pos + 1, le->buf + le->pos, (size_t)(le->len - le->pos + 1));
	le->buf[le->pos] = (char)c;
	le->len++;
	emit_c(&s, (char)c);
	le->pos++;
	if (le->pos < le->len)
		redraw_tail(le, &s, 0);
	return LE_MORE;
}

void le_remember(struct lineedit *le)
{
	if (!le->len || (le->nhist && !strcmp(hist_entry(le, 1), le->buf)))
		return;
	memcpy(le->hist[le->head], le->buf, (size_t)le->len + 1);
	le->head = (le->head + 1) % LE_HIST;
	if (le->nhist < LE_HIST)
		le->nhist++;
}
