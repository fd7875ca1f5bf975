/* The event log: a ring of timestamped lines, each also printed on the console. */
#ifndef KERNEL_LOG_H
#define KERNEL_LOG_H

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
void log_event(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
