/* The NBD client protocol: fixed newstyle handshake (NBD_OPT_GO, else NBD_OPT_EXPORT_NAME),
 * request framing and simple-reply parsing with several requests in flight. Every field from
 * the server is checked before it is used; a violation ends the connection with -E_CORRUPT. */
#include "nbd.h"
#include "net.h"

#define NBDMAGIC        0x4e42444d41474943ULL   /* "NBDMAGIC" */
#define IHAVEOPT        0x49484156454F5054ULL   /* "IHAVEOPT" */
#define OPT_REPLY_MAGIC 0x0003e889045565a9ULL
#define REQ_MAGIC       0x25609513u
#define REPLY_MAGIC     0x67446698u
#define STRUCT_MAGIC    0x668e33efu
enum { OPT_EXPORT_NAME = 1, OPT_GO = 7 };
enum { REP_ACK = 1, REP_INFO = 3 };
#define REP_ERR_BIT     0x80000000u
#define REP_ERR_UNSUP   (REP_ERR_BIT | 1)
#define REP_ERR_UNKNOWN (REP_ERR_BIT | 6)
#define HS_FLAG_FIXED_NEWSTYLE 1u
#define HS_FLAG_NO_ZEROES      2u
#define INFO_EXPORT 0

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }

int nbd_errno_to_err(uint32_t e)
{
	switch (e) {
	case 0: return 0;
	case 1: return -E_RDONLY;     /* EPERM */
	case 5: return -E_IO;         /* EIO */
	case 12: return -E_NOMEM;     /* ENOMEM */
	case 22: return -E_INVAL;     /* EINVAL */
	case 28: return -E_NOSPC;     /* ENOSPC */
	case 75: return -E_RANGE;     /* EOVERFLOW */
	case 95: return -E_UNSUPP;    /* ENOTSUP */
	case 108: return -E_GONE;     /* ESHUTDOWN: the server is going away */
	default: return -E_IO;
	}
}

static void expect(struct nbd_client *c, uint32_t n)
{
	c->hdr_need = n;
	c->hdr_got = 0;
}

static void queue_out(struct nbd_client *c, const void *p, uint32_t n)
{
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void send_option(struct nbd_client *c, uint32_t opt)
{
	uint8_t h[16];
	uint32_t nl = (uint32_t)strlen(c->export_name);
	put64(h, IHAVEOPT);
	put32(h + 8, opt);
	put32(h + 12, opt == OPT_GO ? 4 + nl + 2 : nl);
	queue_out(c, h, 16);
	if (opt == OPT_GO) {
		uint8_t l[4];
		put32(l, nl);
		queue_out(c, l, 4);
	}
	queue_out(c, c->export_name, nl);
	if (opt == OPT_GO) {
		uint8_t z[2] = { 0, 0 };   /* no information requests: the export info comes anyway */
		queue_out(c, z, 2);
	}
}

int nbd_client_init(struct nbd_client *c, const char *name)
{
	size_t n = strlen(name);
	if (n > NBD_EXPORT_MAX)
		return -E_INVAL;
	memset(c, 0, sizeof(*c));
	memcpy(c->export_name, name, n);
	c->state = NBD_HS_GREETING;
	c->rx_slot = -1;
	expect(c, 18);
	return 0;
}

static int fail(struct nbd_client *c, int err)
{
	c->state = NBD_FAILED;
	if (!c->error)
		c->error = err;
	return c->error;
}

/* A complete handshake header or option-reply payload is in hdr/optbuf. */
static int handshake_step(struct nbd_client *c)
{
	const uint8_t *h = c->hdr;
	if (c->state == NBD_HS_GREETING) {
		if (get64(h) != NBDMAGIC || get64(h + 8) != IHAVEOPT)
			return fail(c, -E_CORRUPT);   /* not a newstyle NBD server */
		uint16_t fl = get16(h + 16);
		if (!(fl & HS_FLAG_FIXED_NEWSTYLE))
			return fail(c, -E_UNSUPP);
		c->no_zeroes = (fl & HS_FLAG_NO_ZEROES) != 0;
		uint8_t cf[4];
		put32(cf, HS_FLAG_FIXED_NEWSTYLE | (c->no_zeroes ? HS_FLAG_NO_ZEROES : 0));
		queue_out(c, cf, 4);
		send_option(c, OPT_GO);
		c->state = NBD_HS_OPTREPLY;
		expect(c, 20);
		return 0;
	}
	if (c->state == NBD_HS_EXPORTNAME) {
		c->size = get64(h);
		c->tflags = get16(h + 8);
		c->have_export = true;
		if (c->size == 0 || c->size >> 62)
			return fail(c, -E_CORRUPT);
		c->state = NBD_READY;
		expect(c, 16);
		return 0;
	}
	/* NBD_HS_OPTREPLY: a reply header (opt_len == 0 and nothing gathered) or its payload. */
	if (get64(h) != OPT_REPLY_MAGIC || get32(h + 8) != OPT_GO)
		return fail(c, -E_CORRUPT);
	c->opt_type = get32(h + 12);
	c->opt_len = get32(h + 16);
	if (c->opt_len > 65536)
		return fail(c, -E_CORRUPT);   /* no reply of ours is ever that long */
	c->opt_got = 0;
	c->skip = c->opt_len;
	return 0;
}

/* An option reply with its payload (the first bytes in optbuf) is complete. */
static int option_reply_done(struct nbd_client *c)
{
	uint32_t t = c->opt_type, n = c->opt_got;
	const uint8_t *p = c->optbuf;
	if (t == REP_INFO) {
		if (n >= 2 && get16(p) == INFO_EXPORT) {
			if (c->opt_len != 12)
				return fail(c, -E_CORRUPT);
			c->size = get64(p + 2);
			c->tflags = get16(p + 10);
			c->have_export = true;
		}
	} else if (t == REP_ACK) {
		if (!c->have_export || c->size == 0 || c->size >> 62)
			return fail(c, -E_CORRUPT);
		c->state = NBD_READY;
		expect(c, 16);
		return 0;
	} else if (t == REP_ERR_UNSUP) {
		/* An older server: the export by name, answered by size and flags (+ 124 zeros). */
		send_option(c, OPT_EXPORT_NAME);
		c->state = NBD_HS_EXPORTNAME;
		expect(c, c->no_zeroes ? 10 : 134);
		return 0;
	} else if (t & REP_ERR_BIT) {
		uint32_t k = n < sizeof(c->server_msg) - 1 ? n : (uint32_t)sizeof(c->server_msg) - 1;
		for (uint32_t i = 0; i < k; i++)
			c->server_msg[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
		c->server_msg[k] = '\0';
		return fail(c, t == REP_ERR_UNKNOWN ? -E_NOENT : -E_IO);
	}
	expect(c, 20);   /* other replies (NBD_REP_INFO of other kinds) are skipped */
	return 0;
}

static int transmission_reply(struct nbd_client *c)
{
	const uint8_t *h = c->hdr;
	if (get32(h) != REPLY_MAGIC)
		return fail(c, get32(h) == STRUCT_MAGIC ? -E_UNSUPP : -E_CORRUPT);
	uint32_t err = get32(h + 4);
	uint64_t handle = get64(h + 8);
	int s = (int)(handle & 0xff);
	if (s >= NBD_SLOTS || !c->slot[s] || c->handle[s] != handle || c->slot_sent[s] < 28)
		return fail(c, -E_CORRUPT);   /* an answer to nothing we asked */
	struct nbd_req *r = c->slot[s];
	r->server_errno = err;
	r->status = nbd_errno_to_err(err);
	if (r->type == NBD_CMD_READ && err == 0) {
		c->rx_slot = s;
		c->rx_got = 0;
		return 0;
	}
	if (err)
		c->errors++;
	r->done = true;
	c->slot[s] = NULL;
	expect(c, 16);
	return 0;
}

static int send_pending(struct nbd_client *c, const struct nbd_stream *s)
{
	while (c->out_sent < c->out_len) {
		int n = s->send(s->ctx, c->out + c->out_sent, c->out_len - c->out_sent);
		if (n < 0)
			return fail(c, n);
		if (n == 0)
			return 0;
		c->out_sent += (uint32_t)n;
	}
	c->out_len = c->out_sent = 0;
	if (c->state != NBD_READY)
		return 0;
	while (c->sq_len) {
		int sl = c->sendq[c->sq_head];
		struct nbd_req *r = c->slot[sl];
		uint32_t total = 28 + (r->type == NBD_CMD_WRITE ? r->len : 0);
		if (c->slot_sent[sl] < 28) {
			uint8_t h[28];
			put32(h, REQ_MAGIC);
			put16(h + 4, r->flags);
			put16(h + 6, r->type);
			put64(h + 8, c->handle[sl]);
			put64(h + 16, r->off);
			put32(h + 24, r->type == NBD_CMD_FLUSH ? 0 : r->len);
			int n = s->send(s->ctx, h + c->slot_sent[sl], 28 - c->slot_sent[sl]);
			if (n < 0)
				return fail(c, n);
			c->slot_sent[sl] += (uint32_t)n;
			if (c->slot_sent[sl] < 28)
				return 0;
		}
		while (c->slot_sent[sl] < total) {
			uint32_t at = c->slot_sent[sl] - 28;
			int n = s->send(s->ctx, (const uint8_t *)r->buf + at, total - c->slot_sent[sl]);
			if (n < 0)
				return fail(c, n);
			if (n == 0)
				return 0;
			c->slot_sent[sl] += (uint32_t)n;
		}
		c->sq_head = (c->sq_head + 1) % NBD_SLOTS;
		c->sq_len--;
	}
	return 0;
}

int nbd_client_pump(struct nbd_client *c, const struct nbd_stream *s)
{
	if (c->state == NBD_FAILED)
		return c->error;
	for (int rounds = 0; rounds < 64; rounds++) {
		int rc = send_pending(c, s);
		if (rc < 0)
			return rc;
		int n;
		if (c->rx_slot >= 0) {   /* READ data straight into the request's buffer */
			struct nbd_req *r = c->slot[c->rx_slot];
			n = s->recv(s->ctx, (uint8_t *)r->buf + c->rx_got, r->len - c->rx_got);
			if (n < 0)
				return fail(c, n);
			c->rx_got += (uint32_t)n;
			if (c->rx_got == r->len) {
				c->bytes_read += r->len;
				r->done = true;
				c->slot[c->rx_slot] = NULL;
				c->rx_slot = -1;
				expect(c, 16);
			}
		} else if (c->skip) {    /* an option reply's payload: the start kept, the rest dropped */
			uint8_t tmp[256];
			uint32_t want = c->skip < sizeof(tmp) ? c->skip : (uint32_t)sizeof(tmp);
			n = s->recv(s->ctx, tmp, want);
			if (n < 0)
				return fail(c, n);
			for (int i = 0; i < n; i++, c->opt_got++)
				if (c->opt_got < sizeof(c->optbuf))
					c->optbuf[c->opt_got] = tmp[i];
			c->skip -= (uint32_t)n;
			if (c->opt_got > sizeof(c->optbuf))
				c->opt_got = sizeof(c->optbuf);
			if (!c->skip && (rc = option_reply_done(c)) < 0)
				return rc;
		} else {
			n = s->recv(s->ctx, c->hdr + c->hdr_got, c->hdr_need - c->hdr_got);
			if (n < 0)
				return fail(c, n);
			c->hdr_got += (uint32_t)n;
			if (c->hdr_got == c->hdr_need) {
				if (c->state == NBD_READY)
					rc = transmission_reply(c);
				else {
					rc = handshake_step(c);
					if (rc == 0 && c->state == NBD_HS_OPTREPLY && c->hdr_need == 20 && !c->skip &&
					    c->hdr_got == 20)
						rc = option_reply_done(c);   /* a reply with no payload */
				}
				if (rc < 0)
					return rc;
			}
		}
		if (n == 0)
			break;
	}
	return send_pending(c, s);
}

int nbd_client_submit(struct nbd_client *c, struct nbd_req *r)
{
	if (c->state != NBD_READY)
		return -E_AGAIN;
	uint16_t tf = c->tflags;
	bool write = r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM || r->type == NBD_CMD_WRITE_ZEROES;
	if (write && (tf & NBD_FLAG_READ_ONLY))
		return -E_RDONLY;
	if ((r->type == NBD_CMD_FLUSH && !(tf & NBD_FLAG_SEND_FLUSH)) ||
	    (r->type == NBD_CMD_TRIM && !(tf & NBD_FLAG_SEND_TRIM)) ||
	    (r->type == NBD_CMD_WRITE_ZEROES && !(tf & NBD_FLAG_SEND_WRITE_ZEROES)) ||
	    ((r->flags & NBD_CMD_FLAG_FUA) && !(tf & NBD_FLAG_SEND_FUA)) ||
	    (r->type != NBD_CMD_READ && r->type != NBD_CMD_FLUSH && !write))
		return -E_UNSUPP;
	if (r->type != NBD_CMD_FLUSH && (r->off > c->size || r->len > c->size - r->off))
		return -E_RANGE;
	int s;
	for (s = 0; s < NBD_SLOTS && c->slot[s]; s++)
		;
	if (s == NBD_SLOTS)
		return -E_BUSY;
	r->done = false;
	r->status = 0;
	c->slot[s] = r;
	c->slot_sent[s] = 0;
	c->handle[s] = (uint64_t)(++c->gen) << 8 | (uint64_t)s;
	c->sendq[(c->sq_head + c->sq_len) % NBD_SLOTS] = (uint8_t)s;
	c->sq_len++;
	c->requests++;
	if (r->type == NBD_CMD_WRITE)
		c->bytes_written += r->len;
	return 0;
}

int nbd_client_take_pending(struct nbd_client *c, struct nbd_req **out, int max)
{
	int n = 0;
	for (int s = 0; s < NBD_SLOTS; s++)
		if (c->slot[s]) {
			if (n < max)
				out[n++] = c->slot[s];
			c->slot[s] = NULL;
		}
	c->sq_len = 0;
	c->rx_slot = -1;
	return n;
}
