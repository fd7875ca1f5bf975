/* Cooperative tasks: background jobs (rescue, clone, wipe) run as tasks with their own stacks;
 * they give the CPU away whenever they wait (for I/O, a delay). The shell is the main task. */
#ifndef KERNEL_TASK_H
#define KERNEL_TASK_H

#include <stddef.h>
#include <stdint.h>
#include "table.h"

struct task;
struct task *task_spawn(const char *name, void (*fn)(void *arg), void *arg, size_t stack_bytes);
void task_yield(void);                /* run the pollers and the other ready tasks once */
void task_sleep_us(uint64_t us);      /* yields until the time has passed */
struct task *task_current(void);
const char *task_name(const struct task *t);
int task_is_main(void);

/* Pollers run on every yield and while the shell waits for a key: drivers reap completions,
 * check deadlines and watch for hot-plug here. Keep them short. */
struct poller { const char *name; void (*poll)(void); };
#define POLLER(id, fn) static const struct poller __poll_##id TABLE_ENTRY(poll, id) = { #id, fn }
void pollers_run(void);

#endif
