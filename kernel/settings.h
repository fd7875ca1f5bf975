/* Accessors for the shell's own runtime settings (`set`). */
#ifndef KERNEL_SETTINGS_H
#define KERNEL_SETTINGS_H
#include <stddef.h>
#include <stdint.h>
#include "table.h"

/* Runtime settings (`set key=value`). Each file registers its own with SETTING(). */
struct setting {
	const char *key;
	const char *help;
	uint64_t *value;      /* numeric settings */
	const char *const *choices; /* NULL-terminated names for enum settings (value is the index) */
	uint64_t min, max;
	/* Settings whose text is neither a number nor a choice (an address): parse checks the
	 * text (printing why it is wrong), format shows the value; changed runs after it is set. */
	int (*parse)(const char *text, uint64_t *v);
	void (*format)(uint64_t v, char *out, int outlen);
	void (*changed)(void);
};
#define SETTING(id, key_, help_, ptr, choices_, min_, max_) \
	static const struct setting __set_##id TABLE_ENTRY(set, id) = \
		{ key_, help_, ptr, choices_, min_, max_, NULL, NULL, NULL }
#define SETTING_FN(id, key_, help_, ptr, parse_, format_, changed_) \
	static const struct setting __set_##id TABLE_ENTRY(set, id) = \
		{ key_, help_, ptr, NULL, 0, 0, parse_, format_, changed_ }

enum { PROGRESS_LIVE, PROGRESS_LINES };
enum { ON_ERROR_PROMPT, ON_ERROR_POWEROFF };
uint64_t setting_progress(void);
uint64_t setting_loglevel(void);
uint64_t setting_on_error(void);
#endif
