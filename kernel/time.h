/* Monotonic time (TSC calibrated at boot against the ACPI PM timer or HPET), delays,
 * deadlines and the one register-polling helper every driver uses. */
#ifndef KERNEL_TIME_H
#define KERNEL_TIME_H

#include <stdbool.h>
#include <stdint.h>

uint64_t time_now_us(void);              /* microseconds since boot, monotonic */
void time_delay_us(uint64_t us);         /* busy wait, no yielding */

typedef uint64_t deadline_t;             /* an absolute time_now_us() value */
static inline deadline_t deadline_in_us(uint64_t us) { return time_now_us() + us; }
static inline deadline_t deadline_in_ms(uint64_t ms) { return time_now_us() + ms * 1000; }
static inline bool deadline_passed(deadline_t d) { return time_now_us() >= d; }

/* Polls a 32-bit MMIO register until (reg & mask) == value or max_us passes.
 * Returns 0 when the condition held, -E_TIMEOUT otherwise. Never yields. */
int wait_reg32(volatile uint32_t *reg, uint32_t mask, uint32_t value, uint64_t max_us);

/* Wall clock at boot from UEFI GetTime plus elapsed time, for mapfile headers. */
struct wall_time { int year, month, day, hour, minute, second; };
void time_wall(struct wall_time *t);

void time_init(void);          /* from kernel_main, after boot_info is copied */
uint64_t time_tsc_khz(void);
void time_calibrate_pm(uint32_t pm_timer_port);   /* after acpi_init */
const char *time_source(void);

#endif
