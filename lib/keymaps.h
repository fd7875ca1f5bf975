/* Keyboard layouts as data: for each key (by its scan code set 1 make code, the code the
 * i8042 translates set 2 into and that USB HID usages map onto) the ASCII character it types
 * plain, with Shift and with AltGr; 0 where the layout has no ASCII character there. */
#ifndef KERNEL_LIB_KEYMAPS_H
#define KERNEL_LIB_KEYMAPS_H
#include <stdint.h>

struct keymap {
	const char *name;
	uint8_t plain[0x60], shift[0x60], altgr[0x60];
};
extern const struct keymap keymaps[];
extern const char *const keymap_names[];   /* NULL-terminated, same order: "us", "de", ... */
#define KEYMAP_COUNT 4

#endif
