/* The poll loop every waiter runs and the cooperative task ring: the shell is task 0, each
 * background job gets a stack of its own, and task_yield() hands the CPU round the ring. */
#include "task.h"
#include "mem.h"
#include "time.h"
#include "console.h"
#include "../lib/errors.h"
#include "../lib/port.h"

#define MAX_TASKS 16
#define STACK_PAGES 32   /* 128 KiB: the rescue keeps its buffers on the heap */

struct task {
	uint64_t rsp;            /* saved while not running */
	void *stack;
	void (*fn)(void *arg);
	void *arg;
	const char *name;
	int live;
};

void task_switch(uint64_t *save_rsp, uint64_t next_rsp);
void task_trampoline(void);
void task_entry(void) __attribute__((noreturn));

static struct task tasks[MAX_TASKS] = { [0] = { .name = "shell", .live = 1 } };
static int current;
static int in_pollers;
static uintptr_t boot_frame;

void pollers_run(void)
{
	if (in_pollers)
		return;
	in_pollers = 1;
	for_each_table_entry(p, poll, const struct poller)
		p->poll();
	in_pollers = 0;
}

/* A finished task's stack is freed by whoever runs next: it cannot free the stack it is on. */
static void reap(void)
{
	for (int i = 1; i < MAX_TASKS; i++)
		if (!tasks[i].live && tasks[i].stack && i != current) {
			page_free(tasks[i].stack, STACK_PAGES);
			tasks[i].stack = NULL;
		}
}

static void switch_to_next(void)
{
	int next = current;
	do
		next = (next + 1) % MAX_TASKS;
	while (!tasks[next].live);
	if (next == current)
		return;
	int prev = current;
	current = next;
	task_switch(&tasks[prev].rsp, tasks[next].rsp);
	reap();
}

void task_yield(void)
{
	if (in_pollers)
		return;
	pollers_run();
	switch_to_next();
}

void task_sleep_us(uint64_t us)
{
	deadline_t d = deadline_in_us(us);
	while (!deadline_passed(d))
		task_yield();
}

int wait_yielding(bool (*done)(void *ctx), void *ctx, uint32_t timeout_ms)
{
	deadline_t d = deadline_in_ms(timeout_ms);
	for (;;) {
		if (done(ctx))
			return 0;
		if (deadline_passed(d))
			return done(ctx) ? 0 : -E_TIMEOUT;
		if (current == 0 && console_interrupted())
			return -E_INTR;
		task_yield();
	}
}

void task_entry(void)
{
	reap();
	struct task *t = &tasks[current];
	t->fn(t->arg);
	t->live = 0;
	switch_to_next();   /* the shell is always live, so this never comes back */
	__builtin_unreachable();
}

struct task *task_spawn(const char *name, void (*fn)(void *arg), void *arg)
{
	int i = 1;
	while (i < MAX_TASKS && (tasks[i].live || tasks[i].stack))
		i++;
	if (i == MAX_TASKS)
		return NULL;
	uint64_t *stack = page_alloc(STACK_PAGES);
	if (!stack)
		return NULL;
	/* The first switch pops six callee-saved registers (zero) and returns into the
	 * trampoline with the stack 16-byte aligned, as a call expects. */
	uint64_t *top = stack + STACK_PAGES * PAGE_SIZE / 8;
	top[-1] = (uint64_t)(uintptr_t)task_trampoline;
	for (int k = 2; k <= 7; k++)
		top[-k] = 0;
	tasks[i] = (struct task){ .rsp = (uint64_t)(uintptr_t)&top[-7], .stack = stack, .fn = fn,
				  .arg = arg, .name = name, .live = 1 };
	return &tasks[i];
}

int task_count(void)
{
	int n = 0;
	for (int i = 1; i < MAX_TASKS; i++)
		n += tasks[i].live;
	return n;
}

int task_is_shell(void)
{
	return current == 0;
}

struct task *task_current(void)
{
	return current ? &tasks[current] : NULL;
}

void task_set_boot_frame(uintptr_t frame)
{
	boot_frame = frame;
}

void task_stack_range(uintptr_t *lo, uintptr_t *hi)
{
	if (current == 0) {
		*lo = 0;
		*hi = boot_frame + 16;   /* kernel_main's saved frame pointer and return address */
		return;
	}
	*lo = (uintptr_t)tasks[current].stack;
	*hi = *lo + STACK_PAGES * PAGE_SIZE;
}

int task_in_pollers(void)
{
	return in_pollers;
}
