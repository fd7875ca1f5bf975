/* The general commands: help, version, echo, sleep, reboot, poweroff. */
#include "../kernel/console.h"
#include "../lib/args.h"
#include "../kernel/power.h"
#include "../kernel/shell.h"
#include "../kernel/task.h"
#include "../kernel/time.h"
#include "../boot/bootinfo.h"
#include "../lib/errors.h"
#include "../lib/port.h"

#ifndef COWBOOT_VERSION
#define COWBOOT_VERSION "unknown"
#endif

static int cmd_help(int argc, char **argv)
{
	if (argc > 2)
		return -E_USAGE;
	if (argc == 2) {
		const struct command *c = shell_find(argv[1]);
		if (!c) {
			kprintf("help: no command '%s'\n", argv[1]);
			return cmd_said(-E_NOENT);
		}
		kprintf("usage: %s\n  %s\n", c->usage, c->summary);
		if (c->help)
			kprintf("  %s\n", c->help);
		return 0;
	}
	for_each_table_entry(c, cmd, const struct command)
		kprintf("  %-10s %s\n", c->name, c->summary);
	kprintf("help <command> shows its usage and options\n");
	return 0;
}
COMMAND(help, "help [command]", "the list of commands, or one command's usage", NULL, cmd_help);

static int cmd_version(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return -E_USAGE;
	const struct boot_info *bi = boot_info_get();
	kprintf("cowboot %s (built %s %s)\n", COWBOOT_VERSION, __DATE__, __TIME__);
	kprintf("firmware: %s rev 0x%08x\n", bi->fw_vendor, bi->fw_revision);
	return 0;
}
COMMAND(version, "version", "version, build, firmware vendor", NULL, cmd_version);

static int cmd_echo(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		kprintf(i + 1 < argc ? "%s " : "%s", argv[i]);
	kprintf("\n");
	return 0;
}
COMMAND(echo, "echo [text...]", "print the text (for scripts)", NULL, cmd_echo);

static int cmd_sleep(int argc, char **argv)
{
	uint64_t ms;
	if (argc != 2 || args_u64(argv[1], &ms) < 0)
		return -E_USAGE;
	deadline_t d = deadline_in_ms(ms);
	while (!deadline_passed(d)) {
		if (console_interrupted())
			return -E_INTR;
		task_yield();
	}
	return 0;
}
COMMAND(sleep, "sleep <ms>", "wait, letting background work run (Ctrl-C stops)", NULL, cmd_sleep);

static int cmd_reboot(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return -E_USAGE;
	power_reboot();
}
COMMAND(reboot, "reboot", "commit everything, then reset the machine", NULL, cmd_reboot);

static int cmd_poweroff(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return -E_USAGE;
	power_off();
}
COMMAND(poweroff, "poweroff", "commit everything, then power off", NULL, cmd_poweroff);
