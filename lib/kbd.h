/* A PS/2 keyboard's scan codes turned into the bytes a VT100 terminal would send: set 2 as the
 * keyboard sends it, or set 1 when the i8042 translates; make/break, Shift, Ctrl, AltGr, Caps
 * and Num Lock; arrows, Home/End, PgUp/PgDn, Insert/Delete. Pure: tested on the host. */
#ifndef KERNEL_LIB_KBD_H
#define KERNEL_LIB_KBD_H
#include <stdint.h>

struct kbd {
	int set1;                 /* codes arrive translated (set 1) */
	int keymap;               /* index into keymaps[] */
	int e0, brk, skip;        /* prefix state: 0xE0, a set 2 break (0xF0), bytes of Pause left */
	int lshift, rshift, lctrl, rctrl, altgr, caps, num;
};

void kbd_init(struct kbd *k, int set1);
/* Feeds one byte from the keyboard; writes the bytes it types to out (up to 8), returns how
 * many (0 for a prefix, a release, a modifier or a key with nothing to type). */
int kbd_feed(struct kbd *k, uint8_t code, char *out);
/* The set 1 code of a set 2 code (below 0x84), 0 when it has none. */
uint8_t kbd_set2_to_set1(uint8_t code);

#endif
