/* NBD exports as disks (drivers/nbd.c) on the host, through the block layer (drivers/blk.c) and
 * the real protocol client (net/nbd.c), against a scripted NBD server behind a fake TCP: the
 * server keeps what it acknowledged in a cache it loses when it restarts, and makes it durable
 * only on FLUSH (or FUA). After a restart the disk reconnects and replays, in their order, the
 * writes, WRITE_ZEROES and TRIMs acknowledged since the last FLUSH: the zeros land between the
 * writes around them, WRITE_ZEROES keeps NO_HOLE, a flush empties the log, a server that comes
 * back without WRITE_ZEROES while the log holds one is not re-bound (nothing written) until it
 * offers it again, a TRIM the server no longer offers is skipped and the writes after it still go. */
/* Both files keep a static table named disks: the block layer's is renamed here. */
#define disks blk_disks
#define ndisks blk_ndisks
#include "../../drivers/blk.c"
#undef disks
#undef ndisks
#include "../../drivers/nbd.c"
#include "../lib/check.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the scripted server -------------------------------------------------------------------- */
#define EXPORT_BYTES (1u << 20)
#define TF_BASE (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA)
#define TF_ALL (TF_BASE | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES)
#define NCONN 16
#define CONN_BUF (4u << 20)

struct cmd { uint16_t type, flags; uint64_t off; uint32_t len; };

static struct {
	bool up;
	uint16_t tflags;
	uint8_t durable[EXPORT_BYTES];   /* what survives a restart */
	uint8_t cur[EXPORT_BYTES];       /* what it serves: durable plus its unflushed cache */
	int conn;                        /* the live connection, -1 when none */
	struct cmd cmds[512];            /* every command of the transmission phase, in order */
	int ncmds, connections;
} S;

struct conn {
	bool used;
	enum tcp_state st;
	int err;
	uint8_t *in, *out;               /* client to server, server to client */
	size_t in_len, in_pos, out_len, out_pos;
	int phase;                       /* 0 client flags, 1 options, 2 transmission */
};
static struct conn C[NCONN];

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }
static void out(struct conn *c, const void *p, size_t n) { memcpy(c->out + c->out_len, p, n); c->out_len += n; }

static void opt_reply(struct conn *c, uint32_t type, const void *data, uint32_t len)
{
	uint8_t h[20];
	put64(h, 0x0003e889045565a9ULL);
	put32(h + 8, 7);
	put32(h + 12, type);
	put32(h + 16, len);
	out(c, h, 20);
	out(c, data, len);
}

/* One step of the server on its live connection: every complete message is answered. */
static void server_step(void)
{
	if (S.conn < 0)
		return;
	struct conn *c = &C[S.conn];
	for (;;) {
		const uint8_t *p = c->in + c->in_pos;
		size_t have = c->in_len - c->in_pos;
		if (c->phase == 0) {
			if (have < 4)
				return;
			c->in_pos += 4;
			c->phase = 1;
		} else if (c->phase == 1) {
			if (have < 16 || have < 16 + get32(p + 12))
				return;
			uint32_t opt = get32(p + 8), len = get32(p + 12);
			c->in_pos += 16 + len;
			if (opt != 7) {
				opt_reply(c, 0x80000001u, NULL, 0);   /* NBD_REP_ERR_UNSUP */
				continue;
			}
			uint8_t info[12];
			put16(info, 0);
			put64(info + 2, EXPORT_BYTES);
			put16(info + 10, S.tflags);
			opt_reply(c, 3, info, 12);
			opt_reply(c, 1, NULL, 0);
			c->phase = 2;
		} else {
			if (have < 28)
				return;
			uint16_t flags = get16(p + 4), type = get16(p + 6);
			uint64_t handle = get64(p + 8), off = get64(p + 16);
			uint32_t len = get32(p + 24);
			if (type == NBD_CMD_WRITE && have < 28 + (size_t)len)
				return;
			c->in_pos += 28 + (type == NBD_CMD_WRITE ? len : 0);
			if (S.ncmds < 512)
				S.cmds[S.ncmds++] = (struct cmd){ type, flags, off, len };
			uint32_t err = off + len > EXPORT_BYTES ? 22 : 0;
			if (!err && type == NBD_CMD_WRITE)
				memcpy(S.cur + off, p + 28, len);
			else if (!err && (type == NBD_CMD_WRITE_ZEROES || type == NBD_CMD_TRIM))
				memset(S.cur + off, 0, len);   /* a trimmed range reads as zeros here */
			if (!err && type == NBD_CMD_FLUSH)
				memcpy(S.durable, S.cur, EXPORT_BYTES);
			else if (!err && (flags & NBD_CMD_FLAG_FUA))
				memcpy(S.durable + off, S.cur + off, len);
			uint8_t r[16];
			put32(r, 0x67446698u);
			put32(r + 4, err);
			put64(r + 8, handle);
			out(c, r, 16);
			if (type == NBD_CMD_READ && !err)
				out(c, S.cur + off, len);
		}
	}
}

/* The server dies (its unflushed cache with it) and comes straight back with `tflags`. */
static void server_restart(uint16_t tflags)
{
	if (S.conn >= 0) {
		C[S.conn].st = TCP_CLOSE_WAIT;   /* the dying process's socket sends its FIN */
		S.conn = -1;
	}
	memcpy(S.cur, S.durable, EXPORT_BYTES);
	S.tflags = tflags;
}

/* ---- the stack's TCP, as the driver sees it -------------------------------------------------- */
int tcp_connect(uint32_t dst, uint16_t port)
{
	(void)dst;
	(void)port;
	for (int i = 0; i < NCONN; i++) {
		struct conn *c = &C[i];
		if (c->used)
			continue;
		if (!c->in && !(c->in = malloc(CONN_BUF), c->out = malloc(CONN_BUF)))
			return -E_NOMEM;
		c->used = true;
		c->in_len = c->in_pos = c->out_len = c->out_pos = 0;
		c->phase = 0;
		if (!S.up) {
			c->st = TCP_CLOSED;
			c->err = -E_RESET;   /* refused */
			return i;
		}
		c->st = TCP_ESTABLISHED;
		c->err = 0;
		if (S.conn >= 0)
			C[S.conn].st = TCP_CLOSED;   /* one client at a time */
		S.conn = i;
		S.connections++;
		out(c, "NBDMAGICIHAVEOPT\0\3", 18);
		return i;
	}
	return -E_NOSPC;
}
enum tcp_state tcp_state(int c) { return c >= 0 && c < NCONN && C[c].used ? C[c].st : TCP_CLOSED; }
int tcp_error(int c) { return c >= 0 && c < NCONN ? C[c].err : -E_NOENT; }
int tcp_send(int i, const void *buf, uint32_t len)
{
	struct conn *c = &C[i];
	if (c->st != TCP_ESTABLISHED)
		return c->err ? c->err : -E_GONE;
	if (len > CONN_BUF - c->in_len)
		len = (uint32_t)(CONN_BUF - c->in_len);
	memcpy(c->in + c->in_len, buf, len);
	c->in_len += len;
	return (int)len;
}
int tcp_recv(int i, void *buf, uint32_t len)
{
	struct conn *c = &C[i];
	size_t k = c->out_len - c->out_pos;
	if (!k)
		return c->st == TCP_ESTABLISHED ? 0 : c->err ? c->err : -E_GONE;
	if (k > len)
		k = len;
	memcpy(buf, c->out + c->out_pos, k);
	c->out_pos += k;
	return (int)k;
}
void tcp_abort(int i)
{
	if (i < 0 || i >= NCONN)
		return;
	C[i].used = false;
	if (S.conn == i)
		S.conn = -1;
}
void net_poll(void) { server_step(); }
void ip_format(char o[16], uint32_t ip)
{
	fmt_snprintf(o, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}
int net_parse_host(const char *s, uint32_t *ip, uint16_t *port)
{
	(void)s;
	*ip = 0x0a000202u;
	*port = 10809;
	return 0;
}
int net_wait_configured(uint32_t timeout_ms) { (void)timeout_ms; return 0; }

/* ---- the kernel around them ----------------------------------------------------------------- */
static uint64_t now_us = 1000000;
uint64_t time_now_us(void) { return now_us += 10; }
void task_yield(void)
{
	now_us += 1000;
	server_step();
	blk_poll_all();
}
int wait_yielding(bool (*done)(void *ctx), void *ctx, uint32_t timeout_ms)
{
	uint64_t end = now_us + timeout_ms * 1000ULL;
	while (!done(ctx)) {
		if (now_us > end)
			return -E_TIMEOUT;
		task_yield();
	}
	return 0;
}
int kprintf(const char *fmt, ...) { (void)fmt; return 0; }
int cmd_said(int rc) { return rc; }
#include "../lib/fake_log.h"
void *kmalloc(size_t n) { return malloc(n); }
void *kzalloc(size_t n) { return calloc(1, n); }
void kfree(void *p) { free(p); }

/* ---- helpers -------------------------------------------------------------------------------- */
static void fill(uint8_t *b, uint32_t sectors, uint8_t v) { memset(b, v, sectors * 512u); }

/* The server's durable bytes of sectors [lba, lba+count) all equal v. */
static bool durable_is(uint64_t lba, uint32_t count, uint8_t v)
{
	for (uint64_t i = lba * 512; i < (lba + count) * 512; i++)
		if (S.durable[i] != v)
			return false;
	return true;
}

/* The commands the server got from index `from` on are exactly `want`. */
static bool cmds_are(int from, const struct cmd *want, int n)
{
	if (S.ncmds - from != n)
		return false;
	for (int i = 0; i < n; i++) {
		const struct cmd *a = &S.cmds[from + i], *b = &want[i];
		if (a->type != b->type || a->flags != b->flags || a->off != b->off || a->len != b->len)
			return false;
	}
	return true;
}

static void dump_cmds(int from)
{
	for (int i = from; i < S.ncmds; i++)
		printf("  cmd %d: type %u flags %u off %llu len %u\n", i, S.cmds[i].type, S.cmds[i].flags,
		       (unsigned long long)S.cmds[i].off, S.cmds[i].len);
}

int main(void)
{
	static uint8_t a[64 * 512], b[64 * 512], c[64 * 512];
	fill(a, 64, 0xaa);
	fill(b, 64, 0xbb);
	fill(c, 64, 0xcc);
	S.up = true;
	S.tflags = TF_ALL;
	S.conn = -1;
	char *argv[] = { "net", "nbd", "10.0.2.2", "disk" };
	CHECK("net nbd attaches the export", nbd_attach_cmd(4, argv) == 0 && blk_count() == 1);
	struct blk_dev *d = blk_get(0);
	struct nbd_disk *n = d->drv;
	CHECK("it offers flush, FUA, write-zeroes and discard",
	      (d->flags & (BLK_F_FLUSH | BLK_F_FUA | BLK_F_ZEROES | BLK_F_DISCARD)) ==
	      (BLK_F_FLUSH | BLK_F_FUA | BLK_F_ZEROES | BLK_F_DISCARD) && d->sectors == EXPORT_BYTES / 512);

	/* Sectors 0..63 hold A, durably. */
	int rc = blk_write(d, 0, 64, a, NULL);
	rc = rc ? rc : blk_flush(d);
	CHECK("a write and a flush reach the server's durable image", rc == 0 && durable_is(0, 64, 0xaa) &&
	      n->log_bytes == 0);

	/* Then, acknowledged but never flushed: B over 16..31, zeros over 0..63, C over 40..47. */
	rc = blk_write(d, 16, 16, b, NULL);
	rc = rc ? rc : blk_write_zeroes(d, 0, 64, NULL);
	rc = rc ? rc : blk_write(d, 40, 8, c, NULL);
	CHECK("a write, a write-zeroes and a write are acknowledged and kept in the replay log",
	      rc == 0 && n->log_head && n->log_head->type == NBD_CMD_WRITE && n->log_head->next &&
	      n->log_head->next->type == NBD_CMD_WRITE_ZEROES && n->log_head->next->next &&
	      n->log_head->next->next->type == NBD_CMD_WRITE && durable_is(0, 64, 0xaa));
	int before = S.ncmds, conns = S.connections;
	server_restart(TF_ALL);
	CHECK("the server's restart loses what it was never asked to flush", S.cur[0] == 0xaa && S.cur[20 * 512] == 0xaa);
	fake_logs[0] = '\0';
	rc = blk_flush(d);
	const struct cmd replay1[] = {
		{ NBD_CMD_WRITE, 0, 16 * 512, 16 * 512 },
		{ NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 0, 64 * 512 },
		{ NBD_CMD_WRITE, 0, 40 * 512, 8 * 512 },
		{ NBD_CMD_FLUSH, 0, 0, 0 },
	};
	bool ok = cmds_are(before, replay1, 4);
	CHECK("the next flush reconnects and first replays the write, the write-zeroes (NO_HOLE) and the write, in order",
	      rc == 0 && S.connections == conns + 1 && ok && strstr(fake_logs, "nbd0: reconnected to the same export"));
	if (!ok)
		dump_cmds(before);
	CHECK("the server's durable image holds the zeros between the writes: 0..39 and 48..63 zero, 40..47 C",
	      durable_is(0, 40, 0) && durable_is(40, 8, 0xcc) && durable_is(48, 16, 0));
	CHECK("the flush emptied the replay log", n->log_head == NULL && n->log_bytes == 0);

	/* Nothing to replay after a flush. */
	before = S.ncmds;
	server_restart(TF_ALL);
	rc = blk_write(d, 100, 4, a, NULL);
	const struct cmd after_flush[] = { { NBD_CMD_WRITE, 0, 100 * 512, 4 * 512 } };
	CHECK("after a flush a restart replays nothing: only the new write is sent",
	      rc == 0 && cmds_are(before, after_flush, 1));
	rc = blk_flush(d);

	/* A write-zeroes in the log and a server back without WRITE_ZEROES: not re-bound. */
	rc = blk_write_zeroes(d, 200, 8, NULL);
	before = S.ncmds;
	conns = S.connections;
	server_restart(TF_BASE | NBD_FLAG_SEND_TRIM);
	fake_logs[0] = '\0';
	struct blk_req fl = { .op = BLK_FLUSH, .timeout_ms = 20000 };
	rc = rc ? rc : blk_submit(d, &fl);
	for (int i = 0; i < 3000 && !fl.complete; i++)
		task_yield();
	CHECK("a server back without WRITE_ZEROES while the log holds one is not re-bound, and nothing is written",
	      rc == 0 && !fl.complete && S.connections > conns && S.ncmds == before &&
	      strstr(fake_logs, "nbd0: the export no longer offers WRITE_ZEROES") && !strstr(fake_logs, "reconnected"));
	S.tflags = TF_ALL;   /* the next connection finds it offered again */
	while (!fl.complete)
		task_yield();
	const struct cmd replay2[] = {
		{ NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 200 * 512, 8 * 512 },
		{ NBD_CMD_FLUSH, 0, 0, 0 },
	};
	ok = cmds_are(before, replay2, 2);
	CHECK("offered again, the write-zeroes is replayed before the waiting flush",
	      fl.status == 0 && ok && strstr(fake_logs, "nbd0: reconnected to the same export"));
	if (!ok)
		dump_cmds(before);

	/* A TRIM between two writes and a server back without TRIM: the TRIM is skipped. */
	memset(S.durable + 300 * 512, 0x11, 16 * 512);
	memcpy(S.cur + 300 * 512, S.durable + 300 * 512, 16 * 512);
	rc = blk_write(d, 300, 4, b, NULL);
	rc = rc ? rc : blk_discard(d, 300, 8);
	rc = rc ? rc : blk_write(d, 306, 2, c, NULL);
	before = S.ncmds;
	server_restart(TF_BASE | NBD_FLAG_SEND_WRITE_ZEROES);
	rc = rc ? rc : blk_flush(d);
	const struct cmd replay3[] = {
		{ NBD_CMD_WRITE, 0, 300 * 512, 4 * 512 },
		{ NBD_CMD_WRITE, 0, 306 * 512, 2 * 512 },
		{ NBD_CMD_FLUSH, 0, 0, 0 },
	};
	ok = cmds_are(before, replay3, 3);
	CHECK("a TRIM the server no longer offers is skipped in the replay; the writes around it go in order",
	      rc == 0 && ok && durable_is(300, 4, 0xbb) && durable_is(306, 2, 0xcc));
	if (!ok)
		dump_cmds(before);
	return CHECK_DONE();
}
