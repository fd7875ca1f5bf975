/* The PS/2 keyboard behind the i8042 controller (laptops' internal keyboards, most desktops, and
 * USB keyboards the firmware emulates as one), polled: the controller self-tested and set up
 * without interrupts, the keyboard on scan code set 2 (translated to set 1 or not, as the
 * firmware left the controller), its keys decoded by lib_kbd into the console's input. */
#include "../kernel/console.h"
#include "../kernel/io.h"
#include "../kernel/keyboard.h"
#include "../lib/kbd.h"
#include "../kernel/log.h"
#include "../kernel/task.h"
#include "../kernel/time.h"
#include "../lib/errors.h"

#define I8042_WRITE_TIMEOUT_MS 50  /* the controller to take a byte (input buffer empty) */
#define I8042_READ_TIMEOUT_MS  50  /* a byte from the controller or the keyboard to arrive */
#define I8042_POLL_BYTES 16        /* bytes taken per poll at most */
#define DATA 0x60
#define CMD 0x64                   /* status when read */
#define ST_OBF 0x01
#define ST_IBF 0x02
#define ST_AUX 0x20
#define ST_ERR 0xc0                /* timeout or parity error on the byte */
#define CCB_IRQS 0x03              /* keyboard and aux interrupts */
#define CCB_KBD_OFF 0x10
#define CCB_XLAT 0x40

static enum { UNTRIED, ABSENT, READY } state;
static struct kbd kbd;

static int wait_input_empty(void)
{
	return wait_port_bits8(CMD, ST_IBF, 0, I8042_WRITE_TIMEOUT_MS);
}

static int read_byte(uint8_t *b)
{
	int rc = wait_port_bits8(CMD, ST_OBF, ST_OBF, I8042_READ_TIMEOUT_MS);
	if (rc == 0)
		*b = inb(DATA);
	return rc;
}

static int ctl(uint8_t cmd)
{
	int rc = wait_input_empty();
	if (rc == 0)
		outb(CMD, cmd);
	return rc;
}

static int ctl_write(uint8_t cmd, uint8_t data)
{
	int rc = ctl(cmd);
	if (rc == 0 && (rc = wait_input_empty()) == 0)
		outb(DATA, data);
	return rc;
}

static int ctl_read(uint8_t cmd, uint8_t *b)
{
	int rc = ctl(cmd);
	return rc < 0 ? rc : read_byte(b);
}

/* A byte to the keyboard, answered with an ack (0xFA); one resend (0xFE) is allowed. */
static int kbd_cmd(uint8_t b)
{
	for (int tries = 0; tries < 2; tries++) {
		uint8_t r;
		int rc = wait_input_empty();
		if (rc < 0)
			return rc;
		outb(DATA, b);
		if ((rc = read_byte(&r)) < 0)
			return rc;
		if (r == 0xfa)
			return 0;
		if (r != 0xfe)
			return -E_IO;
	}
	return -E_IO;
}

static void flush_output(void)
{
	for (int i = 0; i < 64 && (inb(CMD) & ST_OBF); i++)
		(void)inb(DATA);
}

static int i8042_setup(void)
{
	if (inb(CMD) == 0xff)
		return -E_NOENT;   /* nothing decodes the port */
	uint8_t ccb, r;
	int rc;
	if ((rc = ctl(0xad)) < 0 || (rc = ctl(0xa7)) < 0)
		return rc;
	flush_output();
	if ((rc = ctl_read(0x20, &ccb)) < 0)
		return rc;
	if ((rc = ctl_read(0xaa, &r)) < 0)
		return rc;
	if (r != 0x55) {
		log_event(LOG_WARN, "keyboard: i8042 self-test failed (0x%02x): no PS/2 keyboard", r);
		return -E_IO;
	}
	/* Written after the self-test, which resets the configuration on some controllers. */
	ccb = (uint8_t)((ccb & ~(CCB_IRQS | CCB_KBD_OFF)));
	if ((rc = ctl_write(0x60, ccb)) < 0)
		return rc;
	if ((rc = ctl_read(0xab, &r)) < 0)
		return rc;
	if (r != 0x00) {
		log_event(LOG_WARN, "keyboard: i8042 keyboard port test failed (0x%02x)", r);
		return -E_IO;
	}
	if ((rc = ctl(0xae)) < 0)
		return rc;
	/* Set 2 explicitly (what every keyboard does by default), then scanning on. */
	if ((rc = kbd_cmd(0xf0)) < 0 || (rc = kbd_cmd(0x02)) < 0 || (rc = kbd_cmd(0xf4)) < 0) {
		log_event(LOG_INFO, "keyboard: i8042 found, no keyboard answers (%s)", err_str(rc));
		return rc;
	}
	flush_output();
	kbd_init(&kbd, !!(ccb & CCB_XLAT));
	log_event(LOG_INFO, "keyboard: PS/2 (i8042 self-test passed, scan code set 2%s)",
		  ccb & CCB_XLAT ? " translated to set 1" : "");
	return 0;
}

static void i8042_poll(void)
{
	if (state == UNTRIED) {
		int rc = i8042_setup();
		if (rc == -E_TIMEOUT)
			log_event(LOG_WARN, "keyboard: the i8042 controller does not answer: no PS/2 keyboard");
		state = rc == 0 ? READY : ABSENT;
	}
	if (state != READY)
		return;
	for (int i = 0; i < I8042_POLL_BYTES; i++) {
		uint8_t st = inb(CMD);
		if (!(st & ST_OBF))
			return;
		uint8_t b = inb(DATA);
		if (st & (ST_AUX | ST_ERR))
			continue;   /* a mouse's byte, or one garbled on the wire */
		/* A keyboard plugged back in sends its self-test result (0xAA) and starts in set 2
		 * with scanning on: what was set up, so nothing needs doing again. */
		kbd.keymap = keyboard_keymap();
		char out[8];
		int n = kbd_feed(&kbd, b, out);
		if (n)
			console_input(out, (size_t)n);
	}
}
POLLER(i8042, i8042_poll);
