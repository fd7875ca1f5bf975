/* What every keyboard driver (PS/2, USB HID) shares: the layout chosen with `set keymap=`. */
#ifndef KERNEL_KEYBOARD_H
#define KERNEL_KEYBOARD_H
int keyboard_keymap(void);   /* index into keymaps[] (kernel/lib_keymaps.h) */
#endif
