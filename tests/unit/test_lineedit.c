/* The line editor, fed keystrokes as a terminal would send them. */
#include <string.h>
#include "../lib/check.h"
#include "../../lib/lineedit.h"

static enum le_result type(struct lineedit *le, const char *keys)
{
	char out[1024];
	enum le_result r = LE_MORE;
	for (; *keys; keys++)
		r = le_feed(le, (unsigned char)*keys, out, sizeof(out));
	return r;
}

int main(void)
{
	static struct lineedit le;
	le_init(&le);
	le_start(&le);
	CHECK("enter finishes a line", type(&le, "help\r") == LE_ENTER && !strcmp(le.buf, "help"));
	le_remember(&le);
	le_start(&le);
	type(&le, "abcX\x7f" "d");
	CHECK("backspace deletes the previous character", !strcmp(le.buf, "abcd"));
	le_start(&le);
	type(&le, "wrong\x15right");
	CHECK("Ctrl-U erases the line", !strcmp(le.buf, "right"));
	le_start(&le);
	CHECK("Ctrl-C cancels", type(&le, "oops\x03") == LE_CANCEL && le.len == 0);
	le_start(&le);
	type(&le, "ac\x1b[Db");
	CHECK("left arrow then insert edits mid-line", !strcmp(le.buf, "abc"));
	type(&le, "\x1b[C\x1b[Cd");
	CHECK("right arrow stops at the end", !strcmp(le.buf, "abcd"));
	le_start(&le);
	type(&le, "\x1b[A");
	CHECK("up arrow recalls the newest entry", !strcmp(le.buf, "help"));
	le_start(&le);
	type(&le, "two\r");
	le_remember(&le);
	le_start(&le);
	type(&le, "\x1b[A\x1b[A");
	CHECK("up twice recalls the older entry", !strcmp(le.buf, "help"));
	type(&le, "\x1b[B");
	CHECK("down returns to the newer entry", !strcmp(le.buf, "two"));
	type(&le, "\x1b[B");
	CHECK("down past the newest gives an empty line", le.len == 0);
	le_start(&le);
	type(&le, "two\r");
	le_remember(&le);
	CHECK("repeats are not stored twice", le.nhist == 2);
	le_start(&le);
	type(&le, "\x01\x7f\x1b[D");
	CHECK("control keys and edits on an empty line are harmless", le.len == 0 && le.pos == 0);
	le_start(&le);
	for (int i = 0; i < LE_LINE + 50; i++)
		type(&le, "x");
	CHECK("the line is bounded", le.len == LE_LINE - 1 && le.buf[LE_LINE - 1] == '\0');
	char out[64];
	le_start(&le);
	le_feed(&le, 'q', out, sizeof(out));
	CHECK("typing echoes the character", !strcmp(out, "q"));
	le_start(&le);
	type(&le, "bc\x1b[Ha\x1b[Fd");
	CHECK("Home and End (ESC [H, ESC [F) move to the ends", !strcmp(le.buf, "abcd"));
	le_start(&le);
	type(&le, "xbc\x1b[1~\x1b[3~a\x1b[4~d\x1bOHz");
	CHECK("ESC [1~ Home, ESC [3~ Delete, ESC [4~ End, ESC O H", !strcmp(le.buf, "zabcd"));
	le_start(&le);
	type(&le, "ab\x1b[5~\x1b[6~\x1b[5;2~");
	CHECK("PgUp/PgDn, also with Shift, insert nothing", !strcmp(le.buf, "ab") && le.pos == 2);
	return CHECK_DONE();
}
