/* Time from the TSC. Its rate is measured against the ACPI PM timer (3.579545 MHz, a fixed
 * frequency by specification) when the FADT names one, else taken from the UEFI entry's
 * measurement against the firmware's Stall(). */
#include "time.h"
#include "io.h"
#include "../boot/bootinfo.h"
#include "../lib/errors.h"

static uint64_t tsc_base, tsc_khz = 1000000;
static const char *tsc_source = "firmware Stall";

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

void time_init(void)
{
	const struct boot_info *bi = boot_info_get();
	if (bi->tsc_khz)
		tsc_khz = bi->tsc_khz;
	tsc_base = bi->tsc_at_entry;
}

#define PM_HZ 3579545u

/* Counts TSC ticks across 25 ms of PM timer (24-bit counter: wraps every 4.7 s). */
void time_calibrate_pm(uint32_t port)
{
	if (!port)
		return;
	uint32_t start = inl((uint16_t)port) & 0xffffff, target = PM_HZ / 40, now;
	uint64_t t0 = rdtsc();
	uint64_t guard = t0 + 50 * tsc_khz * 1000;   /* a dead timer must not hang the boot */
	do {
		now = inl((uint16_t)port) & 0xffffff;
		if (rdtsc() > guard)
			return;
	} while (((now - start) & 0xffffff) < target);
	uint64_t ticks = ((now - start) & 0xffffff);
	uint64_t khz = (rdtsc() - t0) * PM_HZ / ticks / 1000;
	if (khz) {
		tsc_khz = khz;
		tsc_source = "ACPI PM timer";
	}
}

const char *time_source(void)
{
	return tsc_source;
}

uint64_t time_now_us(void)
{
	uint64_t t = rdtsc() - tsc_base;
	/* Split to avoid overflow of t * 1000 on long uptimes. */
	return (t / tsc_khz) * 1000 + (t % tsc_khz) * 1000 / tsc_khz;
}

uint64_t time_tsc_khz(void)
{
	return tsc_khz;
}

void time_delay_us(uint64_t us)
{
	deadline_t d = deadline_in_us(us);
	while (!deadline_passed(d))
		cpu_pause();
}

static int days_in_month(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return d[m - 1] + (m == 2 && leap);
}

void time_wall(struct wall_time *t)
{
	const struct boot_info *bi = boot_info_get();
	if (!bi->wall_valid) {
		*t = (struct wall_time){ 1970, 1, 1, 0, 0, 0 };
		return;
	}
	uint64_t s = bi->wall_second + 60ULL * bi->wall_minute + 3600ULL * bi->wall_hour +
		     time_now_us() / 1000000;
	t->year = bi->wall_year;
	t->month = bi->wall_month;
	t->day = bi->wall_day + (int)(s / 86400);
	s %= 86400;
	t->hour = (int)(s / 3600);
	t->minute = (int)(s / 60 % 60);
	t->second = (int)(s % 60);
	while (t->day > days_in_month(t->year, t->month)) {
		t->day -= days_in_month(t->year, t->month);
		if (++t->month > 12) {
			t->month = 1;
			t->year++;
		}
	}
}
