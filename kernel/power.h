/* Reboot and power-off through UEFI runtime services (ACPI/keyboard-controller fallbacks). */
#ifndef KERNEL_POWER_H
#define KERNEL_POWER_H
void power_reboot(void) __attribute__((noreturn));
void power_off(void) __attribute__((noreturn));
/* Hooks run before reboot/poweroff/quit (commit overlays). Register with SHUTDOWN_HOOK. */
#include "table.h"
struct shutdown_hook { const char *name; void (*fn)(void); };
#define SHUTDOWN_HOOK(id, fn) \
	static const struct shutdown_hook __shut_##id TABLE_ENTRY(shutdown, id) = { #id, fn }
void shutdown_hooks_run(void);
#endif
