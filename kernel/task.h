/* Giving the CPU away while waiting: pollers (drivers reaping completions, checking deadlines,
 * watching hot-plug) run on every yield and while the shell waits for a key. */
#ifndef KERNEL_TASK_H
#define KERNEL_TASK_H

#include <stdint.h>
#include "table.h"

struct poller { const char *name; void (*poll)(void); };
#define POLLER(id, fn) static const struct poller __poll_##id TABLE_ENTRY(poll, id) = { #id, fn }
void pollers_run(void);
void task_yield(void);                /* runs the pollers once */
void task_sleep_us(uint64_t us);      /* yields until the time has passed */

#endif
