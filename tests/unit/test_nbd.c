/* The NBD client protocol (net/nbd.c) against scripted servers over an in-memory
 * stream: the fixed newstyle handshake with NBD_OPT_GO, the NBD_OPT_EXPORT_NAME fallback, a
 * refused name, requests framed byte for byte, several in flight answered out of order with the
 * data landing in the right buffers, the server's errors mapped, commands and flags the export
 * does not offer refused, and protocol violations ending the connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../../net/nbd.h"
#include "../../net/net.h"

/* What the client sent, and what the server has queued for it; reads come in small pieces. */
static uint8_t sent[1 << 20], inq[1 << 20];
static size_t nsent, nin, inpos;
static uint32_t piece = 7;

static int s_send(void *ctx, const void *b, uint32_t n)
{
	(void)ctx;
	if (n > 3000)
		n = 3000;   /* a stream that takes only part of what is offered */
	memcpy(sent + nsent, b, n);
	nsent += n;
	return (int)n;
}

static int s_recv(void *ctx, void *b, uint32_t n)
{
	(void)ctx;
	size_t k = nin - inpos;
	if (k > n)
		k = n;
	if (k > piece)
		k = piece;
	memcpy(b, inq + inpos, k);
	inpos += k;
	return (int)k;
}

static const struct nbd_stream st = { NULL, s_send, s_recv };

static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }
static void q(const void *p, size_t n) { memcpy(inq + nin, p, n); nin += n; }
static void q16(uint16_t v) { uint8_t b[2]; put16(b, v); q(b, 2); }
static void q32(uint32_t v) { uint8_t b[4]; put32(b, v); q(b, 4); }
static void q64(uint64_t v) { uint8_t b[8]; put64(b, v); q(b, 8); }

static void reset_stream(void)
{
	nsent = nin = inpos = 0;
}

static void greeting(uint16_t flags)
{
	q("NBDMAGICIHAVEOPT", 16);
	q16(flags);
}

static void opt_reply(uint32_t type, const void *data, uint32_t len)
{
	q64(0x0003e889045565a9ULL);
	q32(7);
	q32(type);
	q32(len);
	q(data, len);
}

static void go_success(uint64_t size, uint16_t tflags)
{
	uint8_t info[12];
	put16(info, 0);
	put64(info + 2, size);
	put16(info + 10, tflags);
	opt_reply(3, info, 12);
	uint8_t other[4] = { 0, 3, 0, 0 };   /* an info of another kind: skipped */
	opt_reply(3, other, 4);
	opt_reply(1, NULL, 0);
}

static int pump_until(struct nbd_client *c, int (*done)(struct nbd_client *), int rounds)
{
	int rc = 0;
	for (int i = 0; i < rounds && !done(c); i++)
		if ((rc = nbd_client_pump(c, &st)) < 0)
			return rc;
	return rc;
}
static int is_ready(struct nbd_client *c) { return c->state == NBD_READY || c->state == NBD_FAILED; }

/* The handle of the n-th request the client sent (requests start after the handshake bytes). */
static uint64_t sent_handle(size_t req_off) { return (uint64_t)get32(sent + req_off + 8) << 32 | get32(sent + req_off + 12); }

static void reply(uint64_t handle, uint32_t err, const void *data, uint32_t len)
{
	q32(0x67446698u);
	q32(err);
	q64(handle);
	if (data)
		q(data, len);
}

#define TF_ALL (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | \
		NBD_FLAG_SEND_WRITE_ZEROES)

static struct nbd_client c;

static int ready_client(uint16_t tflags, uint64_t size, size_t *hs_len)
{
	reset_stream();
	nbd_client_init(&c, "disk-7");
	greeting(3);
	go_success(size, tflags);
	int rc = pump_until(&c, is_ready, 1000);
	*hs_len = nsent;
	return rc;
}

int main(void)
{
	/* The handshake, checked byte for byte. */
	size_t hs;
	int rc = ready_client(TF_ALL, 1 << 20, &hs);
	CHECK("NBD_OPT_GO handshake ends ready with the export's size and flags",
	      rc == 0 && c.state == NBD_READY && c.size == 1 << 20 && c.tflags == TF_ALL);
	uint8_t want[4 + 16 + 4 + 6 + 2];
	put32(want, 3);   /* FIXED_NEWSTYLE | NO_ZEROES, as offered */
	memcpy(want + 4, "IHAVEOPT", 8);
	put32(want + 12, 7);
	put32(want + 16, 4 + 6 + 2);
	put32(want + 20, 6);
	memcpy(want + 24, "disk-7", 6);
	want[30] = want[31] = 0;
	CHECK("the client sends its flags and NBD_OPT_GO with the name and no info requests",
	      hs == sizeof(want) && !memcmp(sent, want, sizeof(want)));

	/* Several requests in flight, answered out of order. */
	uint8_t b0[4096], b1[512], wbuf[1024];
	memset(b0, 0, sizeof(b0));
	memset(b1, 0, sizeof(b1));
	for (int i = 0; i < 1024; i++)
		wbuf[i] = (uint8_t)(i * 3);
	struct nbd_req r[6] = {
		{ .type = NBD_CMD_READ, .off = 0, .len = 4096, .buf = b0 },
		{ .type = NBD_CMD_WRITE, .flags = NBD_CMD_FLAG_FUA, .off = 8192, .len = 1024, .buf = wbuf },
		{ .type = NBD_CMD_READ, .off = 512, .len = 512, .buf = b1 },
		{ .type = NBD_CMD_FLUSH },
		{ .type = NBD_CMD_WRITE_ZEROES, .flags = NBD_CMD_FLAG_NO_HOLE, .off = 0xc0000, .len = 65536 },
		{ .type = NBD_CMD_TRIM, .off = 1u << 19, .len = 8192 },
	};
	bool all = true;
	for (int i = 0; i < 6; i++)
		all &= nbd_client_submit(&c, &r[i]) == 0;
	for (int i = 0; i < 50; i++)
		nbd_client_pump(&c, &st);
	CHECK("six requests are taken at once", all);
	size_t off[6], at = hs;
	for (int i = 0; i < 6; i++) {
		off[i] = at;
		at += 28 + (r[i].type == NBD_CMD_WRITE ? r[i].len : 0);
	}
	CHECK("requests are framed: magic, flags, type, offset, length, then the write's data",
	      nsent == at && get32(sent + off[1]) == 0x25609513u && get16(sent + off[1] + 4) == 1 &&
	      get16(sent + off[1] + 6) == 1 && get32(sent + off[1] + 20) == 8192 && get32(sent + off[1] + 24) == 1024 &&
	      !memcmp(sent + off[1] + 28, wbuf, 1024) && get16(sent + off[3] + 6) == 3 && get32(sent + off[3] + 24) == 0 &&
	      get16(sent + off[4] + 6) == 6);
	CHECK("WRITE_ZEROES and TRIM carry their range and flags in the header and no data",
	      get16(sent + off[4] + 4) == NBD_CMD_FLAG_NO_HOLE && get16(sent + off[4] + 6) == 6 &&
	      get32(sent + off[4] + 16) == 0 && get32(sent + off[4] + 20) == 0xc0000 &&
	      get32(sent + off[4] + 24) == 65536 && get32(sent + off[5]) == 0x25609513u &&
	      get16(sent + off[5] + 4) == 0 && get16(sent + off[5] + 6) == 4 &&
	      get32(sent + off[5] + 20) == 1u << 19 && get32(sent + off[5] + 24) == 8192 &&
	      off[5] + 28 == nsent);
	uint8_t d0[4096], d1[512];
	for (int i = 0; i < 4096; i++)
		d0[i] = (uint8_t)(i ^ 0x5a);
	memset(d1, 0x77, sizeof(d1));
	reply(sent_handle(off[2]), 0, d1, 512);
	reply(sent_handle(off[3]), 0, NULL, 0);
	reply(sent_handle(off[0]), 0, d0, 4096);
	reply(sent_handle(off[1]), 5, NULL, 0);    /* EIO */
	reply(sent_handle(off[4]), 28, NULL, 0);   /* ENOSPC */
	reply(sent_handle(off[5]), 0, NULL, 0);
	for (int i = 0; i < 2000 && inpos < nin; i++)
		nbd_client_pump(&c, &st);
	CHECK("out-of-order replies complete every request", r[0].done && r[1].done && r[2].done && r[3].done && r[4].done &&
	      r[5].done && r[5].status == 0);
	CHECK("read data lands in its own request's buffer", !memcmp(b0, d0, 4096) && !memcmp(b1, d1, 512));
	CHECK("server errors map to the shared list", r[0].status == 0 && r[1].status == -E_IO &&
	      r[3].status == 0 && r[4].status == -E_NOSPC && r[1].server_errno == 5);

	/* A reply to a request never made, or with a bad magic, ends the connection. */
	reply(0x12345678ull, 0, NULL, 0);
	rc = 0;
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = nbd_client_pump(&c, &st);
	CHECK("a reply to no request is a protocol violation", rc == -E_CORRUPT && c.state == NBD_FAILED);

	ready_client(TF_ALL, 1 << 20, &hs);
	struct nbd_req rr = { .type = NBD_CMD_READ, .off = 0, .len = 512, .buf = b1 };
	nbd_client_submit(&c, &rr);
	nbd_client_pump(&c, &st);
	q32(0x668e33efu);   /* a structured reply we never asked for */
	q32(0);
	q64(sent_handle(hs));
	rc = pump_until(&c, is_ready, 100);
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = nbd_client_pump(&c, &st);
	CHECK("a structured reply (not negotiated) ends the connection", rc == -E_UNSUPP);
	struct nbd_req *left[NBD_SLOTS];
	CHECK("after a failure the unanswered request is handed back for re-issue",
	      nbd_client_take_pending(&c, left, NBD_SLOTS) == 1 && left[0] == &rr && !rr.done);

	/* What the export does not offer is refused before anything is sent. */
	ready_client(NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY, 1 << 20, &hs);
	struct nbd_req w = { .type = NBD_CMD_WRITE, .off = 0, .len = 512, .buf = wbuf };
	struct nbd_req f = { .type = NBD_CMD_FLUSH };
	struct nbd_req t = { .type = NBD_CMD_TRIM, .off = 0, .len = 512 };
	struct nbd_req big = { .type = NBD_CMD_READ, .off = (1 << 20) - 512, .len = 1024, .buf = b0 };
	CHECK("a write to a read-only export is refused", nbd_client_submit(&c, &w) == -E_RDONLY);
	CHECK("flush and trim not offered are refused", nbd_client_submit(&c, &f) == -E_UNSUPP &&
	      nbd_client_submit(&c, &t) == -E_RDONLY);
	ready_client(NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH, 1 << 20, &hs);
	struct nbd_req z = { .type = NBD_CMD_WRITE_ZEROES, .off = 0, .len = 512 };
	CHECK("trim and write-zeroes not offered by a writable export are refused",
	      nbd_client_submit(&c, &t) == -E_UNSUPP && nbd_client_submit(&c, &z) == -E_UNSUPP);
	CHECK("a read past the end is refused", nbd_client_submit(&c, &big) == -E_RANGE);
	ready_client(NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH, 1 << 20, &hs);
	struct nbd_req fua = { .type = NBD_CMD_WRITE, .flags = NBD_CMD_FLAG_FUA, .off = 0, .len = 512, .buf = wbuf };
	CHECK("FUA not offered is refused", nbd_client_submit(&c, &fua) == -E_UNSUPP &&
	      nbd_client_submit(&c, &f) == 0);
	struct nbd_req many[NBD_SLOTS + 1];
	int ok = 0, busy = 0;
	for (int i = 0; i < NBD_SLOTS + 1; i++) {
		many[i] = (struct nbd_req){ .type = NBD_CMD_READ, .off = 0, .len = 512, .buf = b1 };
		rc = nbd_client_submit(&c, &many[i]);
		ok += rc == 0;
		busy += rc == -E_BUSY;
	}
	CHECK("requests beyond the slots are refused as busy", ok == NBD_SLOTS - 1 && busy == 2);

	/* An old server: NBD_OPT_GO unsupported, the export by name, answered with 134 bytes. */
	reset_stream();
	nbd_client_init(&c, "old");
	greeting(1);   /* FIXED_NEWSTYLE only: the zeros come */
	opt_reply(0x80000001u, "no GO", 5);
	q64(123456 * 512);
	q16(NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH);
	uint8_t zeros[124] = { 0 };
	q(zeros, 124);
	rc = pump_until(&c, is_ready, 1000);
	CHECK("NBD_OPT_EXPORT_NAME fallback when the server lacks NBD_OPT_GO",
	      rc == 0 && c.state == NBD_READY && c.size == 123456ull * 512 && get32(sent) == 1 &&
	      get32(sent + 4 + 16 + 4 + 2 + 3 + 8) == 1);

	/* A name the server does not have. */
	reset_stream();
	nbd_client_init(&c, "nosuch");
	greeting(3);
	opt_reply(0x80000006u, "unknown export", 14);
	rc = pump_until(&c, is_ready, 1000);
	CHECK("an unknown export is -E_NOENT with the server's text", rc == -E_NOENT && !strcmp(c.server_msg, "unknown export"));

	/* Not an NBD server at all, or one without fixed newstyle. */
	reset_stream();
	nbd_client_init(&c, "x");
	q("SSH-2.0-OpenSSH_9.2\r\n", 21);
	rc = pump_until(&c, is_ready, 1000);
	CHECK("a greeting that is not NBD is refused", rc == -E_CORRUPT);
	reset_stream();
	nbd_client_init(&c, "x");
	greeting(0);
	rc = pump_until(&c, is_ready, 1000);
	CHECK("a server without fixed newstyle is refused", rc == -E_UNSUPP);
	reset_stream();
	nbd_client_init(&c, "x");
	greeting(3);
	opt_reply(1, NULL, 0);   /* ACK without the export's information */
	rc = pump_until(&c, is_ready, 1000);
	CHECK("an ACK without the export's size is refused", rc == -E_CORRUPT);
	return CHECK_DONE();
}
