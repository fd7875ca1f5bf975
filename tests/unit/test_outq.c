/* The console's output queue: whole writes, CR LF, drops counted and noted once the queue has
 * emptied, progress lines coalesced while the line is slow. */
#include <string.h>
#include "../lib/check.h"
#include "../../lib/outq.h"

static char sent[8192];

/* Drains everything the queue would send now. */
static const char *drain(struct outq *q)
{
	int n = 0, c;
	while (n < (int)sizeof(sent) - 1 && (c = outq_get(q)) >= 0)
		sent[n++] = (char)c;
	sent[n] = '\0';
	return sent;
}

int main(void)
{
	static char buf[256];
	struct outq q;
	outq_init(&q, buf, sizeof(buf));
	CHECK("an empty queue sends nothing", outq_get(&q) == -1 && !outq_pending(&q));
	CHECK("a line goes in with CR LF", outq_put(&q, "hi\n", 3) == 0 && outq_used(&q) == 4);
	CHECK("and comes out as it went in", !strcmp(drain(&q), "hi\r\n"));

	char big[300];
	memset(big, 'x', sizeof(big));
	CHECK("a write larger than the room is refused whole", outq_put(&q, big, sizeof(big)) < 0 && outq_used(&q) == 0);
	outq_put(&q, big, 250);
	outq_put_or_drop(&q, "event one\n", 10);
	outq_put_or_drop(&q, "event two\n", 10);
	CHECK("a job's lines that do not fit are dropped and counted",
	      q.dropped_lines == 2 && q.dropped_bytes == 22 && outq_used(&q) == 250);
	/* While the queue drains, the note waits for it to be empty, then comes after. */
	const char *out = drain(&q);
	CHECK("the queued bytes go first, then one note on what was dropped",
	      !strncmp(out, "xxxx", 4) && strstr(out, "(console: 2 lines, 22 bytes not sent") &&
	      strstr(out, "log has the events)\r\n") && (int)strlen(out) > 250);
	CHECK("the note is sent once", !strcmp(drain(&q), "") && !outq_pending(&q));

	/* Progress: at once while the queue is nearly empty... */
	outq_progress(&q, "\rp1", 3);
	CHECK("a progress line goes out at once when the line keeps up", !strcmp(drain(&q), "\rp1"));
	/* ...coalesced when it is a quarter full: only the newest is sent once it empties. */
	outq_put(&q, big, 80);
	outq_progress(&q, "\rp2", 3);
	outq_progress(&q, "\rp3", 3);
	outq_progress(&q, "\rp4", 3);
	CHECK("progress lines behind a full queue are coalesced", q.coalesced == 2 && outq_pending(&q));
	out = drain(&q);
	CHECK("only the newest progress line follows the queued output",
	      strlen(out) == 83 && !strcmp(out + 80, "\rp4"));
	/* A line kept in the slot goes out once the queue has emptied, and the slot is free again. */
	outq_put(&q, big, 80);
	outq_progress(&q, "\rp5", 3);
	drain(&q);
	CHECK("the slot is empty after it was sent", q.progress_len == 0);
	return CHECK_DONE();
}
