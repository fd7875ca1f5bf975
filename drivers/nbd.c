/* NBD exports as block-layer disks nbd0, nbd1, ...: the protocol (net/nbd.c) over a TCP
 * connection of the stack, a reconnect that re-binds by identity (server, export, size) and
 * re-sends what was in flight, and a replay log of the writes the server acknowledged since its
 * last FLUSH, so that a server restart cannot lose data the cow already counts on. */
#include "blk.h"
#include "nbd.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/netif.h"
#include "../kernel/shell.h"
#include "../net/nbd.h"
#include "../net/net.h"
#include "../kernel/task.h"
#include "../kernel/time.h"

#define NBD_CONNECT_TIMEOUT_MS  10000u   /* `net nbd`: TCP connect and handshake */
#define NBD_RECOVER_TIMEOUT_MS   5000u   /* the block layer's recovery: one reconnect attempt */
#define NBD_ADDR_TIMEOUT_MS     20000u   /* `net nbd` at boot: DHCP may still be on its way */
#define NBD_RETRY_FIRST_MS        500u   /* reconnects back off from this ... */
#define NBD_RETRY_MAX_MS         4000u   /* ... to this */
#define NBD_REPLAY_MAX      (16u << 20)  /* unflushed acknowledged writes kept; then a flush */
#define NBD_MAX_REQ_BYTES   (1u << 20)
#define NBD_MAX_ZERO_BYTES  (64u << 20)  /* a WRITE_ZEROES or TRIM: no data, so larger */
#define NBD_DISKS               8

enum link { L_DOWN, L_CONNECTING, L_HANDSHAKE, L_REPLAY, L_UP };

struct replay {                   /* an acknowledged write not yet covered by a FLUSH */
	struct replay *next;
	uint64_t seq, off;
	uint32_t len;
	uint16_t type, flags;         /* WRITE (len bytes of data follow), WRITE_ZEROES, TRIM */
	uint8_t data[];
};

/* The commands that change the export, which the replay log keeps and a full log holds back. */
static bool changes_data(uint16_t type)
{
	return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES || type == NBD_CMD_TRIM;
}

struct nbd_disk {
	struct blk_dev dev;
	uint32_t ip;
	uint16_t port;
	char export_name[NBD_EXPORT_MAX + 1];
	uint64_t size;                /* identity: with server and name */
	uint16_t tflags;
	enum link link;
	int tcp;
	struct nbd_client cl;
	struct nbd_stream st;
	uint64_t next_try_us;
	uint32_t backoff_ms;
	int last_err;
	/* One nbd_req per block request in flight (blk's drv_tag indexes it). */
	struct nbd_req req[NBD_SLOTS];
	struct blk_req *breq[NBD_SLOTS];
	bool in_client[NBD_SLOTS];
	uint64_t flush_mark[NBD_SLOTS];   /* a FLUSH covers the replay entries below this seq */
	/* The replay log and the driver's own flush when it fills. */
	struct replay *log_head, **log_tail;
	uint64_t log_seq, log_bytes;
	struct nbd_req iflush;
	uint64_t iflush_mark;
	bool iflush_busy;
	struct nbd_req rep[NBD_SLOTS];    /* replays after a reconnect */
	struct replay *rep_next;
	int rep_busy;
	uint64_t reconnects, replayed_bytes;
};

static struct nbd_disk *disks[NBD_DISKS];
static int ndisks;

static int st_send(void *ctx, const void *buf, uint32_t len)
{
	return tcp_send(*(int *)ctx, buf, len);
}

static int st_recv(void *ctx, void *buf, uint32_t len)
{
	return tcp_recv(*(int *)ctx, buf, len);
}

static void ident(const struct nbd_disk *n, char *out, size_t outlen)
{
	char ip[16];
	ip_format(ip, n->ip);
	fmt_snprintf(out, outlen, "%s:%u/%s", ip, n->port, n->export_name);
}

static void log_drop_below(struct nbd_disk *n, uint64_t mark)
{
	while (n->log_head && n->log_head->seq < mark) {
		struct replay *r = n->log_head;
		n->log_head = r->next;
		n->log_bytes -= r->type == NBD_CMD_WRITE ? r->len : sizeof(*r);
		kfree(r);
	}
	if (!n->log_head)
		n->log_tail = &n->log_head;
}

static void log_add(struct nbd_disk *n, const struct nbd_req *q)
{
	/* A WRITE_ZEROES or TRIM is kept as its range only, and in order with the writes: a write
	 * replayed over zeros the server lost too would bring old data back. */
	uint32_t keep = q->type == NBD_CMD_WRITE ? q->len : 0;
	struct replay *r = kmalloc(sizeof(*r) + keep);
	if (!r) {
		/* Cannot keep it: the driver flushes before it acknowledges more (see drive()). */
		n->log_bytes = NBD_REPLAY_MAX;
		return;
	}
	r->next = NULL;
	r->seq = n->log_seq++;
	r->off = q->off;
	r->len = q->len;
	r->type = q->type;
	r->flags = q->flags;
	if (keep)
		memcpy(r->data, q->buf, keep);
	*n->log_tail = r;
	n->log_tail = &r->next;
	n->log_bytes += keep ? keep : sizeof(*r);
}

/* A replayed entry overlapping one still in flight waits for it: the server may run the
 * requests it has in any order, and the later one must land last. */
static bool overlaps_replay_in_flight(const struct nbd_disk *n, const struct replay *r)
{
	for (int i = 0; i < NBD_SLOTS / 2; i++) {
		const struct replay *o = n->rep[i].priv;
		if (o && r->off < o->off + o->len && o->off < r->off + r->len)
			return true;
	}
	return false;
}

static void lost(struct nbd_disk *n, int why)
{
	char id[300];
	ident(n, id, sizeof(id));
	if (n->link == L_UP || n->link == L_REPLAY)
		log_event(LOG_WARN, "%s: connection to %s lost (%s); reconnecting", n->dev.name, id,
			  why == -E_GONE ? "closed by the server" : err_str(why));
	struct nbd_req *p[NBD_SLOTS];
	nbd_client_take_pending(&n->cl, p, NBD_SLOTS);
	for (int s = 0; s < NBD_SLOTS; s++)
		n->in_client[s] = false;
	n->iflush_busy = false;
	n->rep_busy = 0;
	for (int i = 0; i < NBD_SLOTS; i++)
		n->rep[i].priv = NULL;   /* the next connection replays the log from its head */
	if (n->tcp >= 0)
		tcp_abort(n->tcp);
	n->tcp = -1;
	n->link = L_DOWN;
	n->last_err = why;
	n->next_try_us = time_now_us() + (uint64_t)n->backoff_ms * 1000;
	n->backoff_ms = n->backoff_ms * 2 > NBD_RETRY_MAX_MS ? NBD_RETRY_MAX_MS : n->backoff_ms * 2;
}

static void complete_slot(struct nbd_disk *n, int s)
{
	struct nbd_req *q = &n->req[s];
	struct blk_req *r = n->breq[s];
	n->breq[s] = NULL;
	n->in_client[s] = false;
	int rc = q->status;
	if (rc == 0 && changes_data(q->type) && !(q->flags & NBD_CMD_FLAG_FUA) &&
	    (n->tflags & NBD_FLAG_SEND_FLUSH))
		log_add(n, q);
	if (rc == 0 && q->type == NBD_CMD_FLUSH)
		log_drop_below(n, n->flush_mark[s]);
	/* A server's EIO on a read is what a failing disk behind it reports. */
	if (rc == -E_IO && r->op == BLK_READ)
		rc = -E_MEDIUM;
	blk_complete(&n->dev, r, rc, rc ? r->lba : BLK_NO_LBA);
}

static int submit_to_client(struct nbd_disk *n, int s)
{
	struct nbd_req *q = &n->req[s];
	if (q->type == NBD_CMD_FLUSH)
		n->flush_mark[s] = n->log_seq;
	int rc = nbd_client_submit(&n->cl, q);
	if (rc == 0)
		n->in_client[s] = true;
	else if (rc != -E_BUSY && rc != -E_AGAIN) {
		/* Refused by the client (not offered by the export, out of range): it completes with
		 * that at the next poll, never sent. */
		q->done = true;
		q->status = rc;
		n->in_client[s] = true;
	}
	return rc;
}

/* Moves the connection on; never blocks. */
static void drive(struct nbd_disk *n)
{
	uint64_t now = time_now_us();
	if (n->link == L_DOWN) {
		if (now < n->next_try_us)
			return;
		int c = tcp_connect(n->ip, n->port);
		if (c < 0) {
			lost(n, c);
			return;
		}
		n->tcp = c;
		n->link = L_CONNECTING;
	}
	if (n->link == L_CONNECTING) {
		enum tcp_state ts = tcp_state(n->tcp);
		if (ts == TCP_SYN_SENT)
			return;
		if (ts != TCP_ESTABLISHED) {
			int e = tcp_error(n->tcp);
			lost(n, e ? e : -E_GONE);
			return;
		}
		nbd_client_init(&n->cl, n->export_name);
		n->link = L_HANDSHAKE;
	}
	int rc = nbd_client_pump(&n->cl, &n->st);
	if (rc < 0) {
		lost(n, rc);
		return;
	}
	if (n->link == L_HANDSHAKE) {
		if (n->cl.state != NBD_READY)
			return;
		if (n->size && n->cl.size != n->size) {
			log_event(LOG_ERR, "%s: the export now has %llu bytes, not %llu: not the same disk; not re-bound",
				  n->dev.name, (unsigned long long)n->cl.size, (unsigned long long)n->size);
			lost(n, -E_IDENTITY);
			n->next_try_us = now + NBD_RETRY_MAX_MS * 1000ULL;
			return;
		}
		if (!(n->cl.tflags & NBD_FLAG_SEND_WRITE_ZEROES)) {
			for (struct replay *r = n->log_head; r; r = r->next)
				if (r->type == NBD_CMD_WRITE_ZEROES) {
					log_event(LOG_ERR, "%s: the export no longer offers WRITE_ZEROES, which the writes to re-send need; not re-bound",
						  n->dev.name);
					lost(n, -E_IDENTITY);
					n->next_try_us = now + NBD_RETRY_MAX_MS * 1000ULL;
					return;
				}
		}
		n->tflags = n->cl.tflags;
		n->link = L_REPLAY;
		n->rep_next = n->log_head;
		if (n->size)
			n->reconnects++;
	}
	if (n->link == L_REPLAY) {
		/* Writes the old server acknowledged but was never asked to make durable go again,
		 * in their order, before anything new. */
		for (int i = 0; i < NBD_SLOTS; i++)
			if (n->rep[i].done && n->rep[i].priv) {
				if (n->rep[i].status < 0) {
					lost(n, n->rep[i].status);
					return;
				}
				n->rep[i].priv = NULL;
				n->rep_busy--;
			}
		for (int i = 0; i < NBD_SLOTS / 2 && n->rep_next; i++) {
			if (n->rep[i].priv)
				continue;
			struct replay *r = n->rep_next;
			if (r->type == NBD_CMD_TRIM && !(n->tflags & NBD_FLAG_SEND_TRIM)) {
				n->rep_next = r->next;   /* a discard is advice: a server without it skips it */
				continue;
			}
			if (overlaps_replay_in_flight(n, r))
				break;
			n->rep[i] = (struct nbd_req){ .type = r->type, .flags = r->flags, .off = r->off,
						      .len = r->len, .buf = r->data, .priv = r };
			if (nbd_client_submit(&n->cl, &n->rep[i]) < 0) {
				n->rep[i].priv = NULL;   /* not taken: tried again at the next poll */
				break;
			}
			n->rep_busy++;
			n->replayed_bytes += r->len;
			n->rep_next = r->next;
		}
		if (n->rep_next || n->rep_busy) {
			nbd_client_pump(&n->cl, &n->st);
			return;
		}
		n->link = L_UP;
		n->backoff_ms = NBD_RETRY_FIRST_MS;
		if (n->size)
			log_event(LOG_INFO, "%s: reconnected to the same export; %llu requests re-sent", n->dev.name,
				  (unsigned long long)n->dev.ninflight);
	}
	/* The internal flush that empties a full replay log. */
	if (n->iflush_busy && n->iflush.done) {
		n->iflush_busy = false;
		if (n->iflush.status < 0) {
			lost(n, n->iflush.status);
			return;
		}
		log_drop_below(n, n->iflush_mark);
	}
	bool log_full = n->log_bytes >= NBD_REPLAY_MAX;
	if (log_full && !n->iflush_busy) {
		n->iflush = (struct nbd_req){ .type = NBD_CMD_FLUSH };
		n->iflush_mark = n->log_seq;
		if (nbd_client_submit(&n->cl, &n->iflush) == 0)
			n->iflush_busy = true;
	}
	for (int s = 0; s < NBD_SLOTS; s++) {
		if (!n->breq[s] || n->in_client[s])
			continue;
		if (log_full && changes_data(n->req[s].type))
			continue;   /* held until the flush has made the logged writes durable */
		if (submit_to_client(n, s) == -E_BUSY)
			break;
	}
	rc = nbd_client_pump(&n->cl, &n->st);
	if (rc < 0) {
		lost(n, rc);
		return;
	}
	for (int s = 0; s < NBD_SLOTS; s++)
		if (n->breq[s] && n->in_client[s] && n->req[s].done)
			complete_slot(n, s);
	enum tcp_state ts = tcp_state(n->tcp);
	if (ts != TCP_ESTABLISHED)
		lost(n, tcp_error(n->tcp) ? tcp_error(n->tcp) : -E_GONE);
}

static int nbd_start(struct blk_dev *d, struct blk_req *r)
{
	struct nbd_disk *n = d->drv;
	int s;
	for (s = 0; s < NBD_SLOTS - 1 && n->breq[s]; s++)
		;
	if (s == NBD_SLOTS - 1)
		return -E_BUSY;
	n->breq[s] = r;
	r->drv_tag = (uint32_t)s;
	static const uint16_t cmd[] = { [BLK_READ] = NBD_CMD_READ, [BLK_WRITE] = NBD_CMD_WRITE,
		[BLK_FLUSH] = NBD_CMD_FLUSH, [BLK_DISCARD] = NBD_CMD_TRIM, [BLK_WRITE_ZEROES] = NBD_CMD_WRITE_ZEROES };
	n->req[s] = (struct nbd_req){
		.type = cmd[r->op],
		.flags = (uint16_t)(((r->flags & BLK_REQ_FUA) ? NBD_CMD_FLAG_FUA : 0) |
				    (r->op == BLK_WRITE_ZEROES ? NBD_CMD_FLAG_NO_HOLE : 0)),
		.off = r->lba * d->lsize, .len = r->op == BLK_FLUSH ? 0 : r->count * d->lsize, .buf = r->buf };
	n->in_client[s] = false;
	if (r->op == BLK_FLUSH && !(n->tflags & NBD_FLAG_SEND_FLUSH)) {
		/* The server keeps no cache to flush: done at the next poll. */
		n->req[s].done = true;
		n->in_client[s] = true;
		return 0;
	}
	/* Sent at once; completions are only ever delivered from the poll. */
	if (n->link == L_UP && !(n->log_bytes >= NBD_REPLAY_MAX && changes_data(n->req[s].type)) &&
	    submit_to_client(n, s) == 0)
		nbd_client_pump(&n->cl, &n->st);
	return 0;
}

static void nbd_poll(struct blk_dev *d)
{
	drive(d->drv);
}

/* One turn of the network and of the connection's state machine: back up, or refused as
 * another export (no use trying again); a failed try is retried soon, within the recovery. */
static bool reconnected(void *ctx)
{
	struct nbd_disk *n = ctx;
	net_poll();
	drive(n);
	if (n->link == L_UP)
		return true;
	if (n->link == L_DOWN) {
		if (n->last_err == -E_IDENTITY)
			return true;
		n->next_try_us = time_now_us() + 200000;
	}
	return false;
}

/* Drops the connection and everything in flight (the layer re-issues or fails it), then one
 * reconnect with the identity check, within NBD_RECOVER_TIMEOUT_MS. Runs inside the pollers, so
 * it turns the network itself. */
static int nbd_recover(struct blk_dev *d, struct blk_req *overdue)
{
	struct nbd_disk *n = d->drv;
	(void)overdue;
	if (n->link != L_DOWN)
		lost(n, -E_TIMEOUT);
	for (int s = 0; s < NBD_SLOTS; s++)
		n->breq[s] = NULL;
	n->next_try_us = 0;
	wait_until(reconnected, n, NBD_RECOVER_TIMEOUT_MS);
	if (n->link == L_UP)
		return 0;
	char id[300];
	ident(n, id, sizeof(id));
	log_event(LOG_ERR, "%s: %s does not answer (%s)", d->name, id, err_str(n->last_err));
	n->link = L_DOWN;
	return -E_GONE;
}

static void nbd_info(struct blk_dev *d)
{
	struct nbd_disk *n = d->drv;
	char id[300];
	ident(n, id, sizeof(id));
	static const char *const ln[] = { "down", "connecting", "handshake", "replaying", "up" };
	kprintf("nbd: %s, %s, flags 0x%x%s%s%s%s, %llu requests, %llu reconnects, replay log %llu bytes (%llu replayed)\n",
		id, ln[n->link], n->tflags, n->tflags & NBD_FLAG_SEND_FLUSH ? " flush" : "",
		n->tflags & NBD_FLAG_SEND_FUA ? " fua" : "", n->tflags & NBD_FLAG_SEND_TRIM ? " trim" : "",
		n->tflags & NBD_FLAG_SEND_WRITE_ZEROES ? " write-zeroes" : "",
		(unsigned long long)n->cl.requests, (unsigned long long)n->reconnects,
		(unsigned long long)n->log_bytes, (unsigned long long)n->replayed_bytes);
}

static const struct blk_driver_ops nbd_ops = {
	.start = nbd_start, .poll = nbd_poll, .recover = nbd_recover, .info = nbd_info,
};

void nbd_print_all(void)
{
	for (int i = 0; i < ndisks; i++) {
		kprintf("%s  ", disks[i]->dev.name);
		nbd_info(&disks[i]->dev);
	}
}

/* The first connection of `net nbd`: up, or refused for a reason of the server's. */
static bool attached(void *ctx)
{
	struct nbd_disk *n = ctx;
	drive(n);
	return n->link == L_UP || (n->link == L_DOWN && n->last_err);
}

/* net nbd <host>[:port] <export> */
int nbd_attach_cmd(int argc, char **argv)
{
	uint32_t ip;
	uint16_t port = NBD_DEFAULT_PORT;
	if (argc != 4 || net_parse_host(argv[2], &ip, &port) < 0)
		return -E_USAGE;
	if (strlen(argv[3]) > NBD_EXPORT_MAX) {
		kprintf("net nbd: the export name is longer than %d bytes\n", NBD_EXPORT_MAX);
		return -E_USAGE;
	}
	if (ndisks == NBD_DISKS)
		return -E_NOSPC;
	int rc = net_wait_configured(NBD_ADDR_TIMEOUT_MS);
	if (rc < 0)
		return rc;
	struct nbd_disk *n = kzalloc(sizeof(*n));
	if (!n)
		return -E_NOMEM;
	n->ip = ip;
	n->port = port;
	memcpy(n->export_name, argv[3], strlen(argv[3]));
	n->tcp = -1;
	n->st = (struct nbd_stream){ &n->tcp, st_send, st_recv };
	n->log_tail = &n->log_head;
	n->backoff_ms = NBD_RETRY_FIRST_MS;
	n->link = L_DOWN;
	rc = wait_yielding(attached, n, NBD_CONNECT_TIMEOUT_MS);
	if (rc == 0 && n->link != L_UP)
		rc = n->last_err;
	char id[300];
	ident(n, id, sizeof(id));
	if (n->link != L_UP) {
		if (n->tcp >= 0)
			tcp_abort(n->tcp);
		if (rc == -E_NOENT)
			kprintf("net nbd: the server has no export '%s'%s%s\n", n->export_name,
				n->cl.server_msg[0] ? ": " : "", n->cl.server_msg);
		else if (n->cl.server_msg[0])
			kprintf("net nbd: %s refused: %s\n", id, n->cl.server_msg);
		else
			kprintf("net nbd: %s: %s\n", id, err_str(rc));
		kfree(n);
		return cmd_said(rc);   /* worded above */
	}
	n->size = n->cl.size;
	struct blk_dev *d = &n->dev;
	fmt_snprintf(d->name, sizeof(d->name), "nbd%d", ndisks);
	d->transport = "nbd";
	d->ops = &nbd_ops;
	d->drv = n;
	d->lsize = d->psize = 512;
	d->sectors = n->size / 512;
	fmt_snprintf(d->model, sizeof(d->model), "NBD %s", n->export_name);
	char ips[16];
	ip_format(ips, ip);
	fmt_snprintf(d->serial, sizeof(d->serial), "%s:%u", ips, port);
	d->max_sectors = NBD_MAX_REQ_BYTES / 512;
	d->queue_depth = NBD_SLOTS - 1;   /* one slot stays for the replay log's own flush */
	if (n->tflags & NBD_FLAG_READ_ONLY)
		d->flags |= BLK_F_DEV_RO;
	if (n->tflags & NBD_FLAG_SEND_FLUSH)
		d->flags |= BLK_F_FLUSH;
	if (n->tflags & NBD_FLAG_SEND_FUA)
		d->flags |= BLK_F_FUA;
	if (n->tflags & NBD_FLAG_SEND_TRIM)
		d->flags |= BLK_F_DISCARD;
	if (n->tflags & NBD_FLAG_SEND_WRITE_ZEROES)
		d->flags |= BLK_F_ZEROES;
	d->max_zero_sectors = NBD_MAX_ZERO_BYTES / 512;
	if (n->size % 512)
		kprintf("net nbd: %s is not a whole number of sectors: the last %llu bytes are not used\n", id,
			(unsigned long long)(n->size % 512));
	rc = blk_register(d);
	if (rc < 0) {
		tcp_abort(n->tcp);
		kfree(n);
		return rc;
	}
	disks[ndisks++] = n;
	char sz[24];
	blk_format_size(sz, sizeof(sz), n->size);
	kprintf("%s: %s, %s%s\n", d->name, id, sz, d->flags & BLK_F_DEV_RO ? ", read-only" : "");
	return 0;
}
