/* Giving the CPU away while waiting: pollers (drivers reaping completions, checking deadlines,
 * watching hot-plug) run on every yield, and cooperative tasks (background jobs such as a
 * rescue) take turns with the shell at each yield. No preemption: a task runs until it waits. */
#ifndef KERNEL_TASK_H
#define KERNEL_TASK_H

#include <stdint.h>
#include "table.h"

struct poller { const char *name; void (*poll)(void); };
#define POLLER(id, fn) static const struct poller __poll_##id TABLE_ENTRY(poll, id) = { #id, fn }
void pollers_run(void);
/* Runs the pollers once, then lets the next runnable task run. Inside a poller it only spins:
 * pollers never switch tasks, so they need no locking. */
void task_yield(void);
void task_sleep_us(uint64_t us);      /* yields until the time has passed */

struct task;
/* Starts fn(arg) on its own stack; it runs at the next yield of the current task. NULL when
 * out of memory or task slots. The task ends when fn returns. */
struct task *task_spawn(const char *name, void (*fn)(void *arg), void *arg);
int task_count(void);                 /* live tasks other than the shell */
int task_is_shell(void);              /* the running task is the shell (task 0) */
int task_in_pollers(void);            /* running inside a poller: task_yield would only spin */

#endif
