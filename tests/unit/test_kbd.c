/* The PS/2 scan code decoder and the layouts, fed the bytes a keyboard sends (set 2 raw, and
 * set 1 as the i8042 translates it). */
#include <string.h>
#include "../lib/check.h"
#include "../../lib/kbd.h"
#include "../../lib/keymaps.h"

static char typed[256];

/* Feeds codes, collecting what they type. */
static const char *feed(struct kbd *k, const uint8_t *codes, int n)
{
	int len = 0;
	for (int i = 0; i < n; i++) {
		char out[8];
		int m = kbd_feed(k, codes[i], out);
		memcpy(typed + len, out, (size_t)m);
		len += m;
	}
	typed[len] = '\0';
	return typed;
}
#define FEED(k, ...) feed(k, (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ }))

static int keymap_index(const char *name)
{
	for (int i = 0; keymap_names[i]; i++)
		if (!strcmp(keymap_names[i], name))
			return i;
	return -1;
}

int main(void)
{
	struct kbd k;
	kbd_init(&k, 0);
	/* set 2: h (33), i (43), each made and broken */
	CHECK("set 2 make/break types letters", !strcmp(FEED(&k, 0x33, 0xf0, 0x33, 0x43, 0xf0, 0x43), "hi"));
	CHECK("set 2 Shift gives capitals and symbols",
	      !strcmp(FEED(&k, 0x12, 0x33, 0xf0, 0x33, 0x16, 0xf0, 0x16, 0xf0, 0x12, 0x33), "H!h"));
	CHECK("set 2 Caps Lock turns letters only",
	      !strcmp(FEED(&k, 0x58, 0xf0, 0x58, 0x33, 0x16, 0x12, 0x33, 0xf0, 0x12, 0x58, 0xf0, 0x58, 0x33), "H1hh"));
	CHECK("set 2 Ctrl-C is 0x03", !strcmp(FEED(&k, 0x14, 0x21, 0xf0, 0x21, 0xf0, 0x14, 0x21), "\x03" "c"));
	CHECK("set 2 arrows are VT100 sequences",
	      !strcmp(FEED(&k, 0xe0, 0x75, 0xe0, 0xf0, 0x75, 0xe0, 0x72, 0xe0, 0x74, 0xe0, 0x6b), "\x1b[A\x1b[B\x1b[C\x1b[D"));
	CHECK("set 2 Home/End, PgUp/PgDn, Delete",
	      !strcmp(FEED(&k, 0xe0, 0x6c, 0xe0, 0x69, 0xe0, 0x7d, 0xe0, 0x7a, 0xe0, 0x71), "\x1b[H\x1b[F\x1b[5~\x1b[6~\x1b[3~"));
	CHECK("set 2 Shift+PgUp/PgDn scroll back",
	      !strcmp(FEED(&k, 0x59, 0xe0, 0x7d, 0xe0, 0x7a, 0xf0, 0x59, 0xe0, 0x7d), "\x1b[5;2~\x1b[6;2~\x1b[5~"));
	CHECK("set 2 Enter, Backspace, Space, Tab",
	      !strcmp(FEED(&k, 0x5a, 0x66, 0x29, 0x0d), "\r\x7f \t"));
	CHECK("set 2 keypad: navigation with Num Lock off, digits with it on",
	      !strcmp(FEED(&k, 0x75, 0x77, 0xf0, 0x77, 0x75, 0x69), "\x1b[A" "81"));
	CHECK("Pause is skipped whole", !strcmp(FEED(&k, 0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77, 0x33), "h"));
	CHECK("acks and the self-test byte type nothing", !strcmp(FEED(&k, 0xfa, 0xaa, 0x00, 0xff), ""));

	kbd_init(&k, 1);
	CHECK("set 1 make/break types letters", !strcmp(FEED(&k, 0x23, 0xa3, 0x17, 0x97), "hi"));
	CHECK("set 1 left Shift release (0xAA) ends Shift",
	      !strcmp(FEED(&k, 0x2a, 0x23, 0xa3, 0xaa, 0x23), "Hh"));
	CHECK("set 1 extended arrows and fake shifts",
	      !strcmp(FEED(&k, 0xe0, 0x2a, 0xe0, 0x48, 0xe0, 0xc8, 0xe0, 0xaa, 0x23), "\x1b[Ah"));
	CHECK("set 1 Ctrl-U", !strcmp(FEED(&k, 0x1d, 0x16, 0x9d, 0x16), "\x15u"));

	/* Every set 2 make code of the translation table lands on a distinct set 1 code. */
	int seen[0x80] = { 0 }, dup = 0, n = 0;
	for (int c = 0; c < 0x84; c++) {
		uint8_t s1 = kbd_set2_to_set1((uint8_t)c);
		if (s1) {
			dup += seen[s1]++;
			n++;
		}
	}
	CHECK("the set 2 table maps 86 keys, each to its own set 1 code", n == 86 && !dup);

	k.keymap = keymap_index("de");
	/* z y on a German keyboard are swapped; AltGr+Q is @; Shift+7 is / */
	CHECK("de: QWERTZ, AltGr+q is @, Shift+7 is /",
	      !strcmp(FEED(&k, 0x15, 0x95, 0x2c, 0xac, 0xe0, 0x38, 0x10, 0x90, 0xe0, 0xb8, 0x2a, 0x08, 0x88, 0xaa), "zy@/"));
	CHECK("de: the key right of 0 (ß) types nothing, Shift gives ?",
	      !strcmp(FEED(&k, 0x0c, 0x8c, 0x2a, 0x0c, 0x8c, 0xaa), "?"));
	k.keymap = keymap_index("fr");
	CHECK("fr: AZERTY letters, digits need Shift, AltGr+0 is @",
	      !strcmp(FEED(&k, 0x10, 0x11, 0x1e, 0x2c, 0x32, 0x02, 0x2a, 0x02, 0xaa, 0xe0, 0x38, 0x0b, 0xe0, 0xb8), "azqw,&1@"));
	CHECK("fr: Ctrl+C is still at the C key", !strcmp(FEED(&k, 0x1d, 0x2e, 0x9d), "\x03"));
	k.keymap = keymap_index("uk");
	CHECK("uk: Shift+2 is \", Shift+' is @, # beside Enter, \\ beside left Shift",
	      !strcmp(FEED(&k, 0x2a, 0x03, 0x28, 0xaa, 0x2b, 0x56), "\"@#\\"));
	k.keymap = keymap_index("us");
	CHECK("us: Shift+2 is @, Shift+' is \"", !strcmp(FEED(&k, 0x2a, 0x03, 0x28, 0xaa), "@\""));
	CHECK("four keymaps: us de fr uk", keymap_index("us") == 0 && keymap_index("de") == 1 &&
	      keymap_index("fr") == 2 && keymap_index("uk") == 3 && keymap_names[KEYMAP_COUNT] == NULL);
	return CHECK_DONE();
}
