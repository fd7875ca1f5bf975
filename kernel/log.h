/* The event log: a ring of timestamped lines, each also printed on the console. */
#ifndef KERNEL_LOG_H
#define KERNEL_LOG_H

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
void log_event(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Every event also goes to fn (the syslog forwarder of kernel/netif.c); NULL: none. */
void log_set_sink(void (*fn)(enum log_level lvl, const char *msg));

/* Lines ever logged (a sequence number), and line `seq` while the ring still holds it (else
 * NULL): for saving the log elsewhere (the report on the boot volume). */
unsigned long long log_seq(void);
const char *log_line(unsigned long long seq);

#endif
