/* The output queue: see lib_outq.h. */
#include "outq.h"
#include "errors.h"
#include "port.h"

void outq_init(struct outq *q, char *buf, unsigned size)
{
	memset(q, 0, sizeof(*q));
	q->buf = buf;
	q->size = size;
}

unsigned outq_used(const struct outq *q) { return q->head - q->tail; }
unsigned outq_free(const struct outq *q) { return q->size - outq_used(q); }

size_t outq_wire_len(const char *s, size_t n)
{
	size_t w = n;
	for (size_t i = 0; i < n; i++)
		w += s[i] == '\n';
	return w;
}

static void enqueue(struct outq *q, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			q->buf[q->head++ & (q->size - 1)] = '\r';
		q->buf[q->head++ & (q->size - 1)] = s[i];
	}
	q->queued += outq_wire_len(s, n);
}

int outq_put(struct outq *q, const char *s, size_t n)
{
	if (outq_wire_len(s, n) > outq_free(q))
		return -E_AGAIN;
	enqueue(q, s, n);
	return 0;
}

void outq_put_or_drop(struct outq *q, const char *s, size_t n)
{
	if (outq_put(q, s, n) == 0)
		return;
	size_t w = outq_wire_len(s, n);
	q->drop_lines++;
	q->drop_bytes += w;
	q->dropped_lines++;
	q->dropped_bytes += w;
}

void outq_progress(struct outq *q, const char *s, size_t n)
{
	if (!q->progress_len && outq_used(q) < q->size / 4 && outq_put(q, s, n) == 0)
		return;
	if (q->progress_len)
		q->coalesced++;
	q->progress_len = n < OUTQ_PROGRESS_MAX ? n : OUTQ_PROGRESS_MAX;
	memcpy(q->progress, s, q->progress_len);
}

int outq_get(struct outq *q)
{
	if (q->head == q->tail) {
		if (q->drop_lines) {
			char note[128];
			int n = fmt_snprintf(note, sizeof(note),
					     "\n(console: %llu lines, %llu bytes not sent while the serial line was slow; log has the events)\n",
					     (unsigned long long)q->drop_lines, (unsigned long long)q->drop_bytes);
			if (outq_put(q, note, (size_t)n) == 0)
				q->drop_lines = q->drop_bytes = 0;
		} else if (q->progress_len && outq_put(q, q->progress, q->progress_len) == 0) {
			q->progress_len = 0;
		}
		if (q->head == q->tail)
			return -1;
	}
	q->sent++;
	return (unsigned char)q->buf[q->tail++ & (q->size - 1)];
}

int outq_pending(const struct outq *q)
{
	return q->head != q->tail || q->progress_len || q->drop_lines;
}
