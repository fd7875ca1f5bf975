/* Accessors for the shell's own runtime settings (`set`). */
#ifndef KERNEL_SETTINGS_H
#define KERNEL_SETTINGS_H
#include <stdint.h>
enum { PROGRESS_LIVE, PROGRESS_LINES };
enum { ON_ERROR_PROMPT, ON_ERROR_POWEROFF };
uint64_t setting_progress(void);
uint64_t setting_loglevel(void);
uint64_t setting_on_error(void);
#endif
