/* The poll loop every waiter runs: each registered poller once per yield. */
#include "task.h"
#include "time.h"

void pollers_run(void)
{
	for_each_table_entry(p, poll, const struct poller)
		p->poll();
}

void task_yield(void)
{
	pollers_run();
}

void task_sleep_us(uint64_t us)
{
	deadline_t d = deadline_in_us(us);
	while (!deadline_passed(d))
		task_yield();
}
