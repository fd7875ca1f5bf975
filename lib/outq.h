/* The console's output queue as pure code (host-tested): serial bytes (CR LF for LF) in a ring,
 * whole writes or nothing, a drop counter that becomes a note once the queue has emptied, and a
 * progress slot where a newer progress line replaces one not yet sent. */
#ifndef KERNEL_LIB_OUTQ_H
#define KERNEL_LIB_OUTQ_H
#include <stddef.h>
#include <stdint.h>

#define OUTQ_PROGRESS_MAX 256

struct outq {
	char *buf;
	unsigned size;                 /* a power of two */
	unsigned head, tail;           /* free-running */
	char progress[OUTQ_PROGRESS_MAX];
	size_t progress_len;           /* a coalesced progress line waiting for the queue to empty */
	uint64_t drop_lines, drop_bytes;   /* since the last note */
	uint64_t queued, sent, dropped_lines, dropped_bytes, coalesced;
};

void outq_init(struct outq *q, char *buf, unsigned size);
unsigned outq_used(const struct outq *q);
unsigned outq_free(const struct outq *q);
size_t outq_wire_len(const char *s, size_t n);
/* Queues s whole: 0, or -E_AGAIN when it does not fit (nothing queued). */
int outq_put(struct outq *q, const char *s, size_t n);
/* Queues s whole, or counts it as dropped (for the note). */
void outq_put_or_drop(struct outq *q, const char *s, size_t n);
/* A progress line: queued at once while the queue is under a quarter full and no older one
 * waits, else kept in the slot (replacing the older one) until the queue empties. */
void outq_progress(struct outq *q, const char *s, size_t n);
/* The next byte to send, or -1. An empty queue first takes the note on what was dropped, then
 * the waiting progress line. */
int outq_get(struct outq *q);
/* Something is still to be sent (queued, a note, a progress line). */
int outq_pending(const struct outq *q);

#endif
