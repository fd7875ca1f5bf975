/* The console: one output queue drained by a poller to the serial port (the line scripts and
 * people read) while the screen keeps its own text grid; input from the serial port and from
 * the keyboards' queue. */
#include "console.h"
#include "fbcon.h"
#include "task.h"
#include "time.h"
#include "io.h"
#include "../cow/port.h"
#include "../drivers/serial.h"

#define OUT_QUEUE (64 * 1024)      /* a power of two: indices run free and wrap cheaply */
#define SHELL_RESERVE 4096         /* the shell's output leaves this much for job events */
#define SHELL_YIELD_BYTES 4096     /* a long listing gives the jobs a turn this often */
#define DRAIN_BURSTS 64            /* FIFO loads a poll sends at most (1 KiB on a 16550A) */
#define PANIC_FLUSH_TIMEOUT_MS 2000
#define PROGRESS_MAX 256

static char out_q[OUT_QUEUE];
static unsigned out_head, out_tail;
static char progress[PROGRESS_MAX];
static size_t progress_len;        /* a coalesced progress line waiting for the queue to empty */
static uint64_t drop_bytes, drop_lines;   /* since the last note */
static struct console_stats st;
static unsigned since_yield;
static int panic_mode;

static unsigned out_used(void) { return out_head - out_tail; }
static unsigned out_free(void) { return OUT_QUEUE - out_used(); }

/* Bytes on the wire: the serial line gets CR LF for every LF. */
static size_t wire_len(const char *s, size_t n)
{
	size_t w = n;
	for (size_t i = 0; i < n; i++)
		w += s[i] == '\n';
	return w;
}

static void enqueue(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			out_q[out_head++ % OUT_QUEUE] = '\r';
		out_q[out_head++ % OUT_QUEUE] = s[i];
	}
	st.queued += wire_len(s, n);
}

static void drain_serial(void)
{
	for (int b = 0; b < DRAIN_BURSTS && out_head != out_tail; b++) {
		int room = serial_tx_room();
		if (!room)
			return;
		for (; room > 0 && out_head != out_tail; room--, st.sent++)
			serial_tx(out_q[out_tail++ % OUT_QUEUE]);
	}
}

/* Once the queue has emptied: first the note on what was dropped, then the newest progress. */
static void console_drain(void)
{
	drain_serial();
	if (out_head != out_tail)
		return;
	if (drop_lines) {
		char note[128];
		int n = fmt_snprintf(note, sizeof(note),
				     "\n(console: %llu lines, %llu bytes not sent while the serial line was slow; log has the events)\n",
				     (unsigned long long)drop_lines, (unsigned long long)drop_bytes);
		enqueue(note, (size_t)n);
		drop_lines = drop_bytes = 0;
	} else if (progress_len) {
		enqueue(progress, progress_len);
		progress_len = 0;
	}
	drain_serial();
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
		/* A job or a poller: never wait for the line. */
		size_t w = wire_len(s, n);
		if (w > out_free()) {
			drop_bytes += w;
			drop_lines++;
			st.dropped_bytes += w;
			st.dropped_lines++;
			return;
		}
		enqueue(s, n);
		return;
	}
	/* The shell: each piece goes in whole (no job event splits it), waiting for room while
	 * the jobs run. */
	while (n) {
		size_t piece = n < OUT_QUEUE / 4 ? n : OUT_QUEUE / 4;
		size_t w = wire_len(s, piece);
		while (out_free() < w + SHELL_RESERVE) {
			st.shell_waits++;
			task_yield();
		}
		enqueue(s, piece);
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
	if (panic_mode) {
		write_direct(s, n);
		return;
	}
	if (!progress_len && out_used() < OUT_QUEUE / 4 && wire_len(s, n) <= out_free()) {
		enqueue(s, n);
		return;
	}
	if (progress_len)
		st.coalesced++;
	progress_len = n < PROGRESS_MAX ? n : PROGRESS_MAX;
	memcpy(progress, s, progress_len);
}

void console_flush(unsigned timeout_ms)
{
	deadline_t d = deadline_in_ms(timeout_ms);
	while ((out_head != out_tail || progress_len || drop_lines) && !deadline_passed(d)) {
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

void console_get_stats(struct console_stats *out)
{
	*out = st;
	out->pending = out_used();
	out->size = OUT_QUEUE;
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
