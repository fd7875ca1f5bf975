/* Scan code decoding: set 2 is first mapped to set 1 (the translation the i8042 itself does),
 * so one table of keys serves both; the layout comes from lib_keymaps.c. */
#include "kbd.h"
#include "keymaps.h"
#include "port.h"

/* Set 2 make code -> set 1 make code, for the keys of a 104/105-key keyboard. */
static const uint8_t set2_to_set1[0x84] = {
	[0x76] = 0x01, [0x16] = 0x02, [0x1e] = 0x03, [0x26] = 0x04, [0x25] = 0x05, [0x2e] = 0x06,
	[0x36] = 0x07, [0x3d] = 0x08, [0x3e] = 0x09, [0x46] = 0x0a, [0x45] = 0x0b, [0x4e] = 0x0c,
	[0x55] = 0x0d, [0x66] = 0x0e, [0x0d] = 0x0f, [0x15] = 0x10, [0x1d] = 0x11, [0x24] = 0x12,
	[0x2d] = 0x13, [0x2c] = 0x14, [0x35] = 0x15, [0x3c] = 0x16, [0x43] = 0x17, [0x44] = 0x18,
	[0x4d] = 0x19, [0x54] = 0x1a, [0x5b] = 0x1b, [0x5a] = 0x1c, [0x14] = 0x1d, [0x1c] = 0x1e,
	[0x1b] = 0x1f, [0x23] = 0x20, [0x2b] = 0x21, [0x34] = 0x22, [0x33] = 0x23, [0x3b] = 0x24,
	[0x42] = 0x25, [0x4b] = 0x26, [0x4c] = 0x27, [0x52] = 0x28, [0x0e] = 0x29, [0x12] = 0x2a,
	[0x5d] = 0x2b, [0x1a] = 0x2c, [0x22] = 0x2d, [0x21] = 0x2e, [0x2a] = 0x2f, [0x32] = 0x30,
	[0x31] = 0x31, [0x3a] = 0x32, [0x41] = 0x33, [0x49] = 0x34, [0x4a] = 0x35, [0x59] = 0x36,
	[0x7c] = 0x37, [0x11] = 0x38, [0x29] = 0x39, [0x58] = 0x3a, [0x05] = 0x3b, [0x06] = 0x3c,
	[0x04] = 0x3d, [0x0c] = 0x3e, [0x03] = 0x3f, [0x0b] = 0x40, [0x83] = 0x41, [0x0a] = 0x42,
	[0x01] = 0x43, [0x09] = 0x44, [0x77] = 0x45, [0x7e] = 0x46, [0x6c] = 0x47, [0x75] = 0x48,
	[0x7d] = 0x49, [0x7b] = 0x4a, [0x6b] = 0x4b, [0x73] = 0x4c, [0x74] = 0x4d, [0x79] = 0x4e,
	[0x69] = 0x4f, [0x72] = 0x50, [0x7a] = 0x51, [0x70] = 0x52, [0x71] = 0x53, [0x61] = 0x56,
	[0x78] = 0x57, [0x07] = 0x58,
};

uint8_t kbd_set2_to_set1(uint8_t code)
{
	return code < sizeof(set2_to_set1) ? set2_to_set1[code] : 0;
}

void kbd_init(struct kbd *k, int set1)
{
	memset(k, 0, sizeof(*k));
	k->set1 = set1;
}

static int put(char *out, const char *s)
{
	int n = (int)strlen(s);
	memcpy(out, s, (size_t)n);
	return n;
}

/* The navigation keys (E0-prefixed, or the keypad with Num Lock off). */
static int nav(struct kbd *k, uint8_t key, char *out)
{
	int shift = k->lshift || k->rshift;
	switch (key) {
	case 0x48: return put(out, "\x1b[A");
	case 0x50: return put(out, "\x1b[B");
	case 0x4d: return put(out, "\x1b[C");
	case 0x4b: return put(out, "\x1b[D");
	case 0x47: return put(out, "\x1b[H");
	case 0x4f: return put(out, "\x1b[F");
	case 0x49: return put(out, shift ? "\x1b[5;2~" : "\x1b[5~");
	case 0x51: return put(out, shift ? "\x1b[6;2~" : "\x1b[6~");
	case 0x52: return put(out, "\x1b[2~");
	case 0x53: return put(out, "\x1b[3~");
	}
	return 0;
}

static int key_down(struct kbd *k, uint8_t key, int e0, char *out)
{
	switch (key) {
	case 0x2a: k->lshift = 1; return 0;
	case 0x36: k->rshift = 1; return 0;
	case 0x1d: if (e0) k->rctrl = 1; else k->lctrl = 1; return 0;
	case 0x38: if (e0) k->altgr = 1; return 0;
	case 0x3a: k->caps = !k->caps; return 0;
	case 0x45: k->num = !k->num; return 0;
	}
	if (e0) {
		if (key == 0x1c)
			return put(out, "\r");           /* keypad Enter */
		if (key == 0x35)
			return put(out, "/");            /* keypad / */
		return nav(k, key, out);
	}
	if (key >= 0x47 && key <= 0x53 && key != 0x4a && key != 0x4e) {
		static const char pad[] = "789-456+1230.";
		if (!k->num)
			return nav(k, key, out);
		out[0] = pad[key - 0x47];
		return 1;
	}
	if (key >= 0x60)
		return 0;
	const struct keymap *m = &keymaps[k->keymap >= 0 && k->keymap < KEYMAP_COUNT ? k->keymap : 0];
	int shift = k->lshift || k->rshift;
	uint8_t c = k->altgr ? m->altgr[key] : shift ? m->shift[key] : m->plain[key];
	if (!k->altgr && k->caps) {
		/* Caps Lock turns letters over, and only letters. */
		uint8_t lo = m->plain[key], up = m->shift[key];
		if (lo >= 'a' && lo <= 'z' && up == lo - 32)
			c = shift ? lo : up;
	}
	if (!c)
		return 0;
	if (k->lctrl || k->rctrl) {
		if (c >= 'a' && c <= 'z')
			c -= 'a' - 1;
		else if (c >= 'A' && c <= 'Z')
			c -= 'A' - 1;
		else if (c != 0x7f && c != '\r' && c != '\t' && c != 0x1b)
			return 0;
	}
	out[0] = (char)c;
	return 1;
}

static void key_up(struct kbd *k, uint8_t key, int e0)
{
	switch (key) {
	case 0x2a: k->lshift = 0; break;
	case 0x36: k->rshift = 0; break;
	case 0x1d: if (e0) k->rctrl = 0; else k->lctrl = 0; break;
	case 0x38: if (e0) k->altgr = 0; break;
	}
}

int kbd_feed(struct kbd *k, uint8_t code, char *out)
{
	if (k->skip) {               /* the rest of Pause: E1 14 77 E1 F0 14 F0 77 / E1 1D 45 E1 9D C5 */
		k->skip--;
		return 0;
	}
	if (code == 0xe1) {
		k->skip = k->set1 ? 5 : 7;
		return 0;
	}
	if (code == 0xe0) {
		k->e0 = 1;
		return 0;
	}
	/* Acks, resends, overruns and (in set 2) the self-test's 0xAA are not keys; in set 1
	 * 0xAA is the release of left Shift. */
	if (code == 0xfa || code == 0xfe || code == 0x00 || code == 0xff || (!k->set1 && code == 0xaa))
		return 0;
	int e0 = k->e0, brk;
	uint8_t key;
	if (k->set1) {
		brk = code & 0x80;
		key = code & 0x7f;
	} else {
		if (code == 0xf0) {
			k->brk = 1;
			return 0;
		}
		brk = k->brk;
		key = kbd_set2_to_set1(code);
	}
	k->e0 = k->brk = 0;
	/* E0 2A / E0 AA are fake shifts around some keys: not the Shift key. */
	if (!key || (e0 && (key == 0x2a || key == 0x36)))
		return 0;
	if (brk) {
		key_up(k, key, e0);
		return 0;
	}
	return key_down(k, key, e0, out);
}
