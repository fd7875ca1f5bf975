/* The console: one output queue drained by a poller to the serial port (the line scripts and
 * people read) while the screen keeps its own text grid; input from the serial port and from
 * the keyboards' queue. */
#include "console.h"
#include "fbcon.h"
#include "task.h"
#include "time.h"
#include "io.h"
#include "../lib/outq.h"
#include "../lib/port.h"
#include "serial.h"

#define OUT_QUEUE (64 * 1024)      /* a power of two (lib_outq) */
#define SHELL_RESERVE 4096         /* the shell's output leaves this much for job events */
#define SHELL_YIELD_BYTES 4096     /* a long listing gives the jobs a turn this often */
#define DRAIN_BURSTS 64            /* FIFO loads a poll sends at most (1 KiB on a 16550A) */
#define PANIC_FLUSH_TIMEOUT_MS 2000

static char out_buf[OUT_QUEUE];
static struct outq q = { .buf = out_buf, .size = OUT_QUEUE };
static uint64_t shell_waits;
static unsigned since_yield;
static int panic_mode;

/* Sends what the UART takes now, never waiting: called by the poller and after every write, so
 * output goes out at once while the line keeps up (an event logged just before something that
 * may hold the CPU, such as a device reset, is on the wire) and is queued only when it does not. */
static void console_drain(void)
{
	for (int b = 0; b < DRAIN_BURSTS && outq_pending(&q); b++) {
		int room = serial_tx_room();
		if (!room)
			return;
		int c;
		for (; room > 0 && (c = outq_get(&q)) >= 0; room--)
			serial_tx((char)c);
	}
}
POLLER(console, console_drain);

static void write_direct(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			serial_putc('\r');
		serial_putc(s[i]);
	}
}

void console_write(const char *s, size_t n)
{
	if (!n)
		return;
	fbcon_write(s, n);
	if (panic_mode) {
		write_direct(s, n);
		fbcon_flush();
		return;
	}
	if (!task_is_shell() || task_in_pollers()) {
		outq_put_or_drop(&q, s, n);   /* a job or a poller never waits for the line */
		console_drain();
		return;
	}
	/* The shell: each piece goes in whole (no job event splits it), waiting for room while
	 * the jobs run. */
	while (n) {
		size_t piece = n < OUT_QUEUE / 4 ? n : OUT_QUEUE / 4;
		size_t w = outq_wire_len(s, piece);
		while (outq_free(&q) < w + SHELL_RESERVE) {
			shell_waits++;
			task_yield();
		}
		outq_put(&q, s, piece);
		console_drain();
		s += piece;
		n -= piece;
		since_yield += (unsigned)w;
	}
	if (since_yield >= SHELL_YIELD_BYTES && s[-1] == '\n') {
		since_yield = 0;
		task_yield();
	}
}

void console_progress(const char *s, size_t n)
{
	fbcon_write(s, n);
	if (panic_mode)
		write_direct(s, n);
	else
		outq_progress(&q, s, n);
	console_drain();
}

void console_flush(unsigned timeout_ms)
{
	deadline_t d = deadline_in_ms(timeout_ms);
	while (outq_pending(&q) && !deadline_passed(d)) {
		console_drain();
		cpu_pause();
	}
	fbcon_flush();
}

void console_panic(void)
{
	if (panic_mode)
		return;
	console_flush(PANIC_FLUSH_TIMEOUT_MS);
	panic_mode = 1;
}

void console_mark(enum console_sev sev)
{
	fbcon_mark(sev);
}

uint64_t console_line(void)
{
	return fbcon_line();
}

void console_mark_since(uint64_t line, enum console_sev sev)
{
	fbcon_mark_since(line, sev);
}

void console_get_stats(struct console_stats *out)
{
	*out = (struct console_stats){ q.queued, q.sent, q.dropped_bytes, q.dropped_lines, q.coalesced,
				       shell_waits, outq_used(&q), OUT_QUEUE };
}

void console_puts(const char *s)
{
	console_write(s, strlen(s));
}

int kvprintf(const char *fmt, va_list ap)
{
	char buf[512];
	int n = fmt_vsnprintf(buf, sizeof(buf), fmt, ap);
	console_write(buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	return n;
}

int kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = kvprintf(fmt, ap);
	va_end(ap);
	return n;
}

/* ---- input ------------------------------------------------------------------------------- */

static int ctrl_c_seen;

/* Keyboard bytes waiting for console_getc; a power of two so the indices wrap cheaply. */
#define INPUT_QUEUE 256
static char input_q[INPUT_QUEUE];
static unsigned input_head, input_tail;

void console_input(const char *s, size_t n)
{
	/* Scroll-back keys belong to the screen, not to the line being typed. */
	if (n == 6 && !memcmp(s, "\x1b[5;2~", 6)) {
		fbcon_scrollback(1);
		return;
	}
	if (n == 6 && !memcmp(s, "\x1b[6;2~", 6)) {
		fbcon_scrollback(-1);
		return;
	}
	for (size_t i = 0; i < n && input_head - input_tail < INPUT_QUEUE; i++)
		input_q[input_head++ % INPUT_QUEUE] = s[i];
}

static int input_getc(void)
{
	if (input_head != input_tail)
		return (unsigned char)input_q[input_tail++ % INPUT_QUEUE];
	return serial_getc();
}

int console_getc(void)
{
	int c = input_getc();
	if (c == 0x03)
		ctrl_c_seen = 1;
	return c;
}

int console_interrupted(void)
{
	/* Drain input so a Ctrl-C typed during a long command is seen. */
	int c;
	while (!ctrl_c_seen && (c = input_getc()) >= 0)
		if (c == 0x03)
			ctrl_c_seen = 1;
	int r = ctrl_c_seen;
	ctrl_c_seen = 0;
	return r;
}
