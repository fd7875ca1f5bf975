/* Monotonic time (TSC calibrated at boot against the ACPI PM timer or HPET), delays,
 * deadlines and the one deadline-polling helper every driver uses. */
#ifndef KERNEL_TIME_H
#define KERNEL_TIME_H

#include <stdbool.h>
#include <stdint.h>
#include "io.h"
#include "../lib/errors.h"

uint64_t time_now_us(void);              /* microseconds since boot, monotonic */
void time_delay_us(uint64_t us);         /* busy wait, no yielding */

typedef uint64_t deadline_t;             /* an absolute time_now_us() value */
static inline deadline_t deadline_in_us(uint64_t us) { return time_now_us() + us; }
static inline deadline_t deadline_in_ms(uint64_t ms) { return time_now_us() + ms * 1000; }
static inline bool deadline_passed(deadline_t d) { return time_now_us() >= d; }
/* What is left of a deadline in whole milliseconds, rounded up (0 once it has passed): the
 * budget to hand the next command of a sequence that shares one deadline. */
static inline uint32_t deadline_left_ms(deadline_t d)
{
	uint64_t now = time_now_us();
	return now < d ? (uint32_t)((d - now + 999) / 1000) : 0;
}

/* The one deadline-polling helper: polls done(ctx) until it holds or timeout_ms has passed,
 * looking once more at the deadline, so a condition met just then is no timeout. 0 or
 * -E_TIMEOUT. It spins and never yields: for bring-up, resets and recovery. I/O itself ends
 * through pollers, against each request's own deadline (drivers/blk.c). */
static inline int wait_until(bool (*done)(void *ctx), void *ctx, uint32_t timeout_ms)
{
	deadline_t d = deadline_in_ms(timeout_ms);
	for (;;) {
		if (done(ctx))
			return 0;
		if (deadline_passed(d))
			return done(ctx) ? 0 : -E_TIMEOUT;
		cpu_pause();
	}
}

struct wait_bits { volatile uint32_t *reg; uint32_t mask, value; };

static inline bool wait_bits_match(void *ctx)
{
	const struct wait_bits *w = ctx;
	return (*w->reg & w->mask) == w->value;
}

/* wait_until for a 32-bit MMIO register: (*reg & mask) == value. */
static inline int wait_bits32(volatile uint32_t *reg, uint32_t mask, uint32_t value, uint32_t timeout_ms)
{
	struct wait_bits w = { reg, mask, value };
	return wait_until(wait_bits_match, &w, timeout_ms);
}

struct wait_port_bits { uint16_t port; uint8_t mask, value; };

static inline bool wait_port_bits_match(void *ctx)
{
	const struct wait_port_bits *w = ctx;
	return (inb(w->port) & w->mask) == w->value;
}

/* wait_until for an 8-bit I/O port: (inb(port) & mask) == value. */
static inline int wait_port_bits8(uint16_t port, uint8_t mask, uint8_t value, uint32_t timeout_ms)
{
	struct wait_port_bits w = { port, mask, value };
	return wait_until(wait_port_bits_match, &w, timeout_ms);
}

/* Wall clock at boot from UEFI GetTime plus elapsed time, for mapfile headers. */
struct wall_time { int year, month, day, hour, minute, second; };
void time_wall(struct wall_time *t);

void time_init(void);          /* from kernel_main, after boot_info is copied */
uint64_t time_tsc_khz(void);
void time_calibrate_pm(uint32_t pm_timer_port);   /* after acpi_init */
const char *time_source(void);

#endif
