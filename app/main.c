/* kernel_main: brings the machine up after ExitBootServices and hands over to the shell. */
#include "../kernel/acpi.h"
#include "../kernel/console.h"
#include "../kernel/fbcon.h"
#include "../kernel/interrupts.h"
#include "../kernel/mem.h"
#include "../kernel/pci.h"
#include "../kernel/shell.h"
#include "../kernel/task.h"
#include "../kernel/time.h"
#include "welcome.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"
#include "../drivers/blk.h"
#include "../kernel/serial.h"


static struct boot_info kinfo;

const struct boot_info *boot_info_get(void)
{
	return &kinfo;
}

static void cpu_brand(char *out)
{
	uint32_t r[12];
	uint32_t max;
	__asm__ __volatile__("cpuid" : "=a"(max) : "a"(0x80000000u) : "ebx", "ecx", "edx");
	if (max < 0x80000004u) {
		memcpy(out, "unknown CPU", 12);
		return;
	}
	for (uint32_t i = 0; i < 3; i++)
		__asm__ __volatile__("cpuid" : "=a"(r[4 * i]), "=b"(r[4 * i + 1]), "=c"(r[4 * i + 2]),
				     "=d"(r[4 * i + 3]) : "a"(0x80000002u + i));
	memcpy(out, r, 48);
	out[48] = '\0';
	char *p = out;
	while (*p == ' ')
		p++;
	memmove(out, p, strlen(p) + 1);
}

void kernel_main(struct boot_info *bi)
{
	memcpy(&kinfo, bi, sizeof(kinfo));
	task_set_boot_frame((uintptr_t)__builtin_frame_address(0));
	serial_init();
	interrupts_init();
	time_init();
	mem_init();
	fbcon_init();   /* its text grid and scroll-back come from mem */
	acpi_init();
	time_calibrate_pm(acpi_get()->pm_timer_port);

	char brand[49];
	cpu_brand(brand);
	struct mem_stats ms;
	mem_get_stats(&ms);
	kprintf("\ncowboot %s\n", COWBOOT_VERSION);
	kprintf("firmware: %s rev 0x%08x\n", kinfo.fw_vendor, kinfo.fw_revision);
	kprintf("cpu: %s, TSC %llu MHz (measured against the %s)\n", brand,
		(unsigned long long)(time_tsc_khz() / 1000), time_source());
	if (fbcon_active())
		kprintf("screen: %ux%u, console mirrored\n", kinfo.fb.width, kinfo.fb.height);
	kprintf("memory: %llu MiB usable, %llu MiB free\n", (unsigned long long)(ms.total_bytes >> 20),
		(unsigned long long)(ms.free_bytes >> 20));

	pci_scan();
	pci_bind_drivers();
	part_scan_all();
	kprintf("boot: entry-to-prompt %llu ms\n", (unsigned long long)(time_now_us() / 1000));
	welcome_print();
	shell_run_boot_script(kinfo.load_options, kinfo.cfg);
	shell_loop();
}
