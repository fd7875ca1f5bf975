/* Reboot and power-off through UEFI runtime services, after the shutdown hooks have committed
 * everything. The reset-control port 0xCF9 is the fallback for a reboot. */
#include <efi.h>
#include "power.h"
#include "console.h"
#include "io.h"
#include "log.h"
#include "../boot/bootinfo.h"

#define OUTPUT_FLUSH_TIMEOUT_MS 3000   /* a stalled serial line must not keep the machine on */

void shutdown_hooks_run(void)
{
	for_each_table_entry(h, shutdown, const struct shutdown_hook)
		h->fn();
}

static void __attribute__((noreturn)) halt_forever(void)
{
	for (;;)
		__asm__ __volatile__("cli; hlt");
}

void power_reboot(void)
{
	shutdown_hooks_run();
	kprintf("rebooting\n");
	console_flush(OUTPUT_FLUSH_TIMEOUT_MS);
	EFI_RUNTIME_SERVICES *rt = boot_info_get()->runtime_services;
	if (rt)
		uefi_call_wrapper(rt->ResetSystem, 4, EfiResetCold, EFI_SUCCESS, 0, NULL);
	outb(0xCF9, 0x02);
	outb(0xCF9, 0x06);
	kprintf("reboot failed: system halted\n");
	console_flush(OUTPUT_FLUSH_TIMEOUT_MS);
	halt_forever();
}

void power_off(void)
{
	shutdown_hooks_run();
	kprintf("powering off\n");
	console_flush(OUTPUT_FLUSH_TIMEOUT_MS);
	EFI_RUNTIME_SERVICES *rt = boot_info_get()->runtime_services;
	if (rt)
		uefi_call_wrapper(rt->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
	kprintf("power off failed: system halted, it is safe to switch off\n");
	console_flush(OUTPUT_FLUSH_TIMEOUT_MS);
	halt_forever();
}
