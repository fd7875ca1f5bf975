/* The event log: a ring of timestamped lines, each also printed on the console. */
#ifndef KERNEL_LOG_H
#define KERNEL_LOG_H

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
void log_event(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Every event also goes to fn (the syslog forwarder of kernel/net_cmds.c); NULL: none. */
void log_set_sink(void (*fn)(enum log_level lvl, const char *msg));

#endif
