/* The keyboard layout setting: `set keymap=us|de|fr|uk`, read by the keyboard drivers. */
#include "keyboard.h"
#include "../lib/keymaps.h"
#include "settings.h"
#include "shell.h"

static uint64_t keymap;
SETTING(keymap, "keymap", "keyboard layout (PS/2 and USB keyboards)", &keymap, keymap_names, 0,
	KEYMAP_COUNT - 1);

int keyboard_keymap(void)
{
	return (int)keymap;
}
