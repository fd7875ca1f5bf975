/* The event log: every event is printed at once and kept in a ring for `log`. */
#include "log.h"
#include "console.h"
#include "settings.h"
#include "shell.h"
#include "time.h"
#include "../lib/args.h"
#include "../lib/errors.h"
#include "../lib/port.h"

#define LOG_LINES 256
#define LOG_WIDTH 160

static char ring[LOG_LINES][LOG_WIDTH];
static unsigned head, count;
static void (*sink)(enum log_level lvl, const char *msg);

void log_set_sink(void (*fn)(enum log_level lvl, const char *msg))
{
	sink = fn;
}
static unsigned long long total;

void log_event(enum log_level lvl, const char *fmt, ...)
{
	static const char *const tags[] = { "error: ", "warning: ", "", "debug: " };
	char msg[LOG_WIDTH - 16];
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint64_t us = time_now_us();
	char *line = ring[head];
	fmt_snprintf(line, LOG_WIDTH, "[%5llu.%03llu] %s%s", (unsigned long long)(us / 1000000),
		     (unsigned long long)(us / 1000 % 1000), tags[lvl], msg);
	head = (head + 1) % LOG_LINES;
	total++;
	if (count < LOG_LINES)
		count++;
	if ((uint64_t)lvl <= setting_loglevel())
		shell_print_event(line);
	if (sink)
		sink(lvl, msg);
}

unsigned long long log_seq(void)
{
	return total;
}

const char *log_line(unsigned long long seq)
{
	if (seq >= total || total - seq > count)
		return NULL;
	return ring[(head + LOG_LINES - (unsigned)(total - seq)) % LOG_LINES];
}

static int cmd_log(int argc, char **argv)
{
	uint64_t n = 20;
	if (argc > 2 || (argc == 2 && (args_u64(argv[1], &n) < 0 || n == 0)))
		return -E_USAGE;
	if (n > count)
		n = count;
	for (unsigned i = count - (unsigned)n; i < count; i++)
		kprintf("%s\n", ring[(head + LOG_LINES - count + i) % LOG_LINES]);
	return 0;
}
COMMAND(log, "log [n]", "the last n lines of the event log (default 20)", NULL, cmd_log);
