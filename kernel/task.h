/* Giving the CPU away while waiting: pollers (drivers reaping completions, checking deadlines,
 * watching hot-plug) run on every yield, and cooperative tasks (background jobs such as a
 * rescue) take turns with the shell at each yield. No preemption: a task runs until it waits. */
#ifndef KERNEL_TASK_H
#define KERNEL_TASK_H

#include <stdbool.h>
#include <stdbool.h>
#include <stdint.h>
#include "table.h"

struct poller { const char *name; void (*poll)(void); };
#define POLLER(id, fn) static const struct poller __poll_##id TABLE_ENTRY(poll, id) = { #id, fn }
void pollers_run(void);
/* Runs the pollers once, then lets the next runnable task run. Inside a poller it only spins:
 * pollers never switch tasks, so they need no locking. */
void task_yield(void);
void task_sleep_us(uint64_t us);      /* yields until the time has passed */
/* wait_until's counterpart for waits on other tasks and pollers (a connection, an address, a
 * lock): polls done(ctx), yielding between looks, until it holds (0), timeout_ms has passed
 * (-E_TIMEOUT) or, on the shell, the person at the console pressed Ctrl-C (-E_INTR). A
 * background task does not look: the console's input is the shell's to read. */
int wait_yielding(bool (*done)(void *ctx), void *ctx, uint32_t timeout_ms);

struct task;
/* Starts fn(arg) on its own stack; it runs at the next yield of the current task. NULL when
 * out of memory or task slots. The task ends when fn returns. */
struct task *task_spawn(const char *name, void (*fn)(void *arg), void *arg);
int task_count(void);                 /* live tasks other than the shell */
int task_is_shell(void);              /* the running task is the shell (task 0) */
struct task *task_current(void);      /* the running task (NULL for the shell) */
/* The running task's stack, [*lo, *hi), for the exception report's frame walk. The shell runs
 * on the firmware's stack: its top is kernel_main's frame (recorded by task_set_boot_frame),
 * its bottom unknown (*lo = 0). */
void task_stack_range(uintptr_t *lo, uintptr_t *hi);
void task_set_boot_frame(uintptr_t frame);
int task_in_pollers(void);            /* running inside a poller: task_yield would only spin */

#endif
