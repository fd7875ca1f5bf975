/* The stack's TCP (net/tcp.c) against a fake link and a small scripted peer, with a fake
 * clock: clean and lossy, reordering transfers both ways (data checked byte for byte),
 * retransmission with RTO back-off until the connection gives up, SYN retries and a refused
 * connection, the peer's MSS and window honoured, a zero window probed, keepalive, FIN and RST,
 * several connections at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../../net/net.h"
#include "../lib/rng.h"

/* ---- clock, environment ---- */
static uint64_t now_us = 1000000;
static uint64_t t_now(void) { return now_us; }
static void *t_alloc(size_t n) { return calloc(1, n); }
static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void) { return (uint32_t)xorshift64(&rng); }
static uint32_t t_random(void) { return rnd(); }
static void t_log(int level, const char *msg) { (void)level; (void)msg; }
static const struct net_env env = { t_now, t_alloc, free, t_random, t_log };

/* ---- the link: frames in flight with a delivery time, loss and reordering ---- */
#define LINK_MAX 4096
struct frame { uint64_t at; int to_us; uint32_t len; uint8_t b[NET_FRAME_MAX]; };
static struct frame link_q[LINK_MAX];
static int link_n;
static int loss_pm, reorder_pct;   /* loss in per mille, reordering in percent */
static uint64_t link_drops;
static int drop_all_from_us, drop_all_to_us;

static const uint8_t mac_us[6] = { 2, 0, 0, 0, 0, 2 }, mac_peer[6] = { 2, 0, 0, 0, 0, 1 };
#define IP_US   0x0a000002u
#define IP_PEER 0x0a000001u

static void link_put(int to_us, const void *f, uint32_t len)
{
	if ((to_us ? drop_all_to_us : drop_all_from_us) || (loss_pm && (int)(rnd() % 1000) < loss_pm)) {
		link_drops++;
		return;
	}
	if (link_n == LINK_MAX)
		return;   /* a full link drops, as a switch would */
	struct frame *q = &link_q[link_n++];
	q->at = now_us + 200 + ((reorder_pct && (int)(rnd() % 100) < reorder_pct) ? 3000 : 0);
	q->to_us = to_us;
	q->len = len;
	memcpy(q->b, f, len);
}

/* ---- the interface ---- */
static int sends;
static int if_send(struct netif *ifc, const void *frame, uint32_t len)
{
	(void)ifc;
	sends++;
	link_put(0, frame, len);
	return 0;
}
static void if_poll(struct netif *ifc) { (void)ifc; }
static const struct netif_ops ops = { if_send, if_poll };
static struct netif ifc;

/* ---- the peer: ARP answers and a minimal TCP listener on port 10809 ---- */
#define PEER_BUF (16u << 20)
struct peer_conn {
	bool used, fin_rcvd, fin_sent, closed_by_rst;
	uint16_t port;               /* ours */
	uint32_t iss, snd_una, snd_nxt, rcv_nxt, their_wnd;
	uint8_t *rx;                 /* what we sent, in order */
	uint8_t *have;               /* peer_keeps_ooo: which bytes past rx_len arrived early */
	uint32_t rx_len;
	const uint8_t *tx;           /* what the peer sends us, from sequence number tx_base */
	uint32_t tx_len, tx_base;
	uint64_t rto_at;
	uint32_t max_seg, max_beyond_window;
	uint32_t probes_seen;
	bool send_fin_after;
	bool rst_on_data;
};
static struct peer_conn pc[8];
static uint32_t peer_mss = 1460, peer_wnd = 65535;
static int peer_wscale = -1;       /* the window scale the peer offers; -1: none (no scaling) */
static uint32_t max_unacked;       /* our largest flight seen by transfer() */
static bool peer_refuse, peer_silent;
static bool peer_keeps_ooo;        /* a receiver that keeps out-of-order data, as Linux does */

static void peer_send_tcp(struct peer_conn *c, uint32_t seq, uint8_t flags, const uint8_t *data, uint32_t len)
{
	uint8_t f[NET_FRAME_MAX];
	memcpy(f, mac_us, 6);
	memcpy(f + 6, mac_peer, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + 14, *t = ip + 20;
	uint32_t hl = (flags & 2) ? (peer_wscale >= 0 ? 28 : 24) : 20;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + hl + len));
	ip[8] = 64;
	ip[9] = 6;
	put32(ip + 12, IP_PEER);
	put32(ip + 16, IP_US);
	put16(ip + 10, inet_fold(inet_sum(0, ip, 20)));
	put16(t, 10809);
	put16(t + 2, c->port);
	put32(t + 4, seq);
	put32(t + 8, c->rcv_nxt);
	t[12] = (uint8_t)(hl / 4 << 4);
	t[13] = flags | 16;
	uint32_t room = PEER_BUF - c->rx_len, w = peer_wnd < room ? peer_wnd : room;
	if (flags & 2)
		w = w > 65535 ? 65535 : w;
	else if (peer_wscale >= 0)
		w >>= peer_wscale;
	put16(t + 14, (uint16_t)(w > 65535 ? 65535 : w));
	put16(t + 16, 0);
	put16(t + 18, 0);
	if (flags & 2) {
		t[20] = 2;
		t[21] = 4;
		put16(t + 22, (uint16_t)peer_mss);
		if (peer_wscale >= 0) {
			t[24] = 1;
			t[25] = 3;
			t[26] = 3;
			t[27] = (uint8_t)peer_wscale;
		}
	}
	memcpy(t + hl, data, len);
	put16(t + 16, inet_fold(inet_sum(inet_pseudo(IP_PEER, IP_US, 6, hl + len), t, hl + len)));
	link_put(1, f, 14 + 20 + hl + len);
}

static void peer_output(struct peer_conn *c)
{
	while (c->tx && c->snd_nxt - c->tx_base < c->tx_len && c->snd_nxt - c->snd_una < c->their_wnd) {
		uint32_t off = c->snd_nxt - c->tx_base, n = c->tx_len - off;
		if (n > 1460)
			n = 1460;
		if (n > c->their_wnd - (c->snd_nxt - c->snd_una))
			n = c->their_wnd - (c->snd_nxt - c->snd_una);
		peer_send_tcp(c, c->snd_nxt, 0, c->tx + off, n);
		c->snd_nxt += n;
		if (!c->rto_at)
			c->rto_at = now_us + 300000;
	}
	if (c->send_fin_after && !c->fin_sent && (!c->tx || c->snd_nxt - c->tx_base == c->tx_len) && c->fin_rcvd) {
		peer_send_tcp(c, c->snd_nxt, 1, NULL, 0);
		c->snd_nxt++;
		c->fin_sent = true;
	}
}

static void peer_tcp(const uint8_t *t, uint32_t len)
{
	uint16_t sport = get16(t);
	uint32_t seq = get32(t + 4), ack = get32(t + 8), hl = (uint32_t)(t[12] >> 4) * 4, dlen = len - hl;
	uint8_t fl = t[13];
	struct peer_conn *c = NULL;
	for (int i = 0; i < 8; i++)
		if (pc[i].used && pc[i].port == sport)
			c = &pc[i];
	if (fl & 4) {
		if (c)
			c->closed_by_rst = true;
		return;
	}
	if (fl & 2) {   /* SYN */
		if (peer_silent)
			return;
		if (!c) {
			for (int i = 0; i < 8 && !c; i++)
				if (!pc[i].used)
					c = &pc[i];
			if (!c)
				return;   /* the peer is full: the SYN is lost */
			memset(c, 0, sizeof(*c));
			c->used = true;
			c->port = sport;
			c->iss = rnd();
			c->snd_una = c->snd_nxt = c->iss + 1;
			c->rx = calloc(1, PEER_BUF);
			c->have = calloc(1, PEER_BUF);
		}
		c->rcv_nxt = seq + 1;
		if (peer_refuse) {
			peer_send_tcp(c, 0, 4, NULL, 0);
			c->used = false;
			free(c->rx);
			free(c->have);
			return;
		}
		peer_send_tcp(c, c->iss, 2, NULL, 0);
		return;
	}
	if (!c || peer_silent)
		return;
	if (dlen > c->max_seg)
		c->max_seg = dlen;
	if (seq + dlen - c->rcv_nxt > c->max_beyond_window && (int32_t)(seq + dlen - c->rcv_nxt) > 0 &&
	    seq == c->rcv_nxt) {
		uint32_t room = PEER_BUF - c->rx_len, w = peer_wnd < room ? peer_wnd : room;
		if (dlen > w && dlen - w > c->max_beyond_window)
			c->max_beyond_window = dlen - w;
	}
	if (dlen == 0 && seq == c->rcv_nxt - 1)
		c->probes_seen++;   /* a keepalive */
	if ((fl & 16) && (int32_t)(ack - c->snd_una) > 0 && (int32_t)(ack - c->snd_nxt) <= 0) {
		c->snd_una = ack;
		c->rto_at = c->snd_una == c->snd_nxt ? 0 : now_us + 300000;
	}
	c->their_wnd = (uint32_t)get16(t + 14) << (peer_wscale >= 0 ? TCP_WSCALE : 0);
	if (dlen && c->rst_on_data) {
		peer_send_tcp(c, c->snd_nxt, 4, NULL, 0);
		return;
	}
	if (seq == c->rcv_nxt && dlen) {
		uint32_t room = PEER_BUF - c->rx_len, w = peer_wnd < room ? peer_wnd : room;
		uint32_t take = dlen < w ? dlen : w;
		memcpy(c->rx + c->rx_len, t + hl, take);
		c->rx_len += take;
		c->rcv_nxt += take;
		while (peer_keeps_ooo && c->rx_len < PEER_BUF && c->have[c->rx_len]) {   /* a hole filled */
			c->rx_len++;
			c->rcv_nxt++;
		}
		if (take == dlen && (fl & 1)) {
			c->rcv_nxt++;
			c->fin_rcvd = true;
		}
	} else if (seq == c->rcv_nxt && (fl & 1)) {
		c->rcv_nxt++;
		c->fin_rcvd = true;
	} else if (peer_keeps_ooo && dlen && (int32_t)(seq - c->rcv_nxt) > 0 &&
		   seq - c->rcv_nxt + dlen <= PEER_BUF - c->rx_len && seq - c->rcv_nxt + dlen <= 1u << 20) {
		uint32_t at = c->rx_len + (seq - c->rcv_nxt);
		memcpy(c->rx + at, t + hl, dlen);
		memset(c->have + at, 1, dlen);
	}
	if (dlen || (fl & 1) || (dlen == 0 && seq == c->rcv_nxt - 1))
		peer_send_tcp(c, c->snd_nxt, 0, NULL, 0);
	peer_output(c);
}

static void peer_frame(const uint8_t *f, uint32_t len)
{
	uint16_t type = get16(f + 12);
	if (type == 0x0806) {   /* ARP request for the peer: answer */
		const uint8_t *a = f + 14;
		if (get16(a + 6) != 1 || get32(a + 24) != IP_PEER)
			return;
		uint8_t r[42];
		memcpy(r, f + 6, 6);
		memcpy(r + 6, mac_peer, 6);
		put16(r + 12, 0x0806);
		uint8_t *p = r + 14;
		put16(p, 1);
		put16(p + 2, 0x0800);
		p[4] = 6;
		p[5] = 4;
		put16(p + 6, 2);
		memcpy(p + 8, mac_peer, 6);
		put32(p + 14, IP_PEER);
		memcpy(p + 18, a + 8, 6);
		memcpy(p + 24, a + 14, 4);
		link_put(1, r, 42);
		return;
	}
	if (type == 0x0800 && f[14 + 9] == 6) {
		uint32_t ihl = (uint32_t)(f[14] & 15) * 4, total = get16(f + 16);
		(void)len;
		peer_tcp(f + 14 + ihl, total - ihl);
	}
}

static void peer_tick(void)
{
	for (int i = 0; i < 8; i++) {
		struct peer_conn *c = &pc[i];
		if (c->used && c->rto_at && now_us >= c->rto_at && !peer_silent) {
			c->snd_nxt = c->snd_una;   /* go back N */
			c->rto_at = 0;
			peer_output(c);
		}
	}
}

/* One millisecond of the world. */
static void step(void)
{
	now_us += 1000;
	for (int i = 0; i < link_n; ) {
		if (link_q[i].at <= now_us) {
			struct frame f = link_q[i];
			memmove(&link_q[i], &link_q[i + 1], sizeof(link_q[0]) * (size_t)(link_n - i - 1));
			link_n--;
			if (f.to_us)
				net_input(&ifc, f.b, f.len);
			else
				peer_frame(f.b, f.len);
		} else {
			i++;
		}
	}
	net_poll();
	peer_tick();
}

static void world_reset(void)
{
	net_reset();
	for (int i = 0; i < 8; i++)
		if (pc[i].used)
			free(pc[i].rx), free(pc[i].have);
	memset(pc, 0, sizeof(pc));
	link_n = 0;
	loss_pm = reorder_pct = drop_all_from_us = drop_all_to_us = 0;
	peer_mss = 1460;
	peer_wnd = 65535;
	peer_refuse = peer_silent = peer_keeps_ooo = false;
	peer_wscale = -1;
	max_unacked = 0;
	memset(&ifc, 0, sizeof(ifc));
	memcpy(ifc.mac, mac_us, 6);
	ifc.ops = &ops;
	ifc.link = true;
	ifc.driver = "fake";
	net_register(&ifc);
	net_set_static(&ifc, IP_US, 0xffffff00u, 0);
}

static struct peer_conn *peer_of(int c)
{
	struct tcp_info ti;
	if (!tcp_get_info(c, &ti))
		return NULL;
	for (int i = 0; i < 8; i++)
		if (pc[i].used && pc[i].port == ti.lport)
			return &pc[i];
	return NULL;
}

static int connect_and_wait(void)
{
	int c = tcp_connect(IP_PEER, 10809);
	for (int i = 0; i < 20000 && tcp_state(c) == TCP_SYN_SENT; i++)
		step();
	return c;
}

/* Sends `n` bytes to the peer and reads `n` from it at once; true when both arrive intact. */
static bool transfer(int c, uint32_t n, uint64_t max_ms, uint8_t seed)
{
	uint8_t *out = malloc(n), *in = malloc(n), *from_peer = malloc(n);
	for (uint32_t i = 0; i < n; i++) {
		out[i] = (uint8_t)(i * 7 + seed);
		from_peer[i] = (uint8_t)(i * 13 + seed + 1);
	}
	struct peer_conn *p = peer_of(c);
	if (!p)
		return false;
	p->tx = from_peer;
	p->tx_len = n;
	p->tx_base = p->snd_nxt;
	uint32_t rx0 = p->rx_len;
	peer_output(p);
	uint32_t sent = 0, got = 0;
	for (uint64_t ms = 0; ms < max_ms && (got < n || p->rx_len - rx0 < n); ms++) {
		if (sent < n) {
			int k = tcp_send(c, out + sent, n - sent);
			if (k > 0)
				sent += (uint32_t)k;
		}
		int k = tcp_recv(c, in + got, n - got);
		if (k > 0)
			got += (uint32_t)k;
		struct tcp_info ti;
		if (tcp_get_info(c, &ti) && ti.unacked > max_unacked)
			max_unacked = ti.unacked;
		step();
	}
	bool ok = got == n && p->rx_len - rx0 == n && !memcmp(in, from_peer, n) && !memcmp(p->rx + rx0, out, n);
	if (!ok)
		printf("  transfer: sent %u got %u peer got %u\n", sent, got, p->rx_len - rx0);
	p->tx = NULL;
	p->tx_len = 0;
	free(from_peer);
	free(out);
	free(in);   /* the peer's buffer is checked before it is freed */
	return ok;
}

/* Simulated us for 1 MiB from the peer to us with this much reordering; UINT64_MAX when the
 * data did not arrive intact. */
static uint64_t receive_time(uint32_t n, int reorder)
{
	world_reset();
	int c = connect_and_wait();
	uint8_t *src = malloc(n), *in = malloc(n);
	for (uint32_t i = 0; i < n; i++)
		src[i] = (uint8_t)(i * 11 + 3);
	struct peer_conn *p = peer_of(c);
	p->tx = src;
	p->tx_len = n;
	p->tx_base = p->snd_nxt;
	reorder_pct = reorder;
	uint64_t t0 = now_us;
	peer_output(p);
	uint32_t got = 0;
	for (int ms = 0; ms < 60000 && got < n; ms++) {
		int k = tcp_recv(c, in + got, n - got);
		if (k > 0)
			got += (uint32_t)k;
		step();
	}
	uint64_t t = got == n && !memcmp(in, src, n) ? now_us - t0 : UINT64_MAX;
	p->tx = NULL;
	reorder_pct = 0;
	free(src);
	free(in);
	return t;
}

#ifdef TCP_LOSS_BENCH
/* Our sender's 8 MiB to the peer at one loss rate, in simulated seconds. */
static double send_time(uint32_t n, uint64_t *lost, uint64_t *rexmits, bool *ok)
{
	int c = connect_and_wait();
	uint8_t *buf = malloc(n);
	for (uint32_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(i * 5);
	struct peer_conn *p = peer_of(c);
	link_drops = 0;
	uint64_t t0 = now_us;
	uint32_t sent = 0;
	for (uint64_t ms = 0; ms < 3600000 && p->rx_len < n; ms++) {
		if (sent < n) {
			int k = tcp_send(c, buf + sent, n - sent);
			if (k > 0)
				sent += (uint32_t)k;
		}
		step();
	}
	struct tcp_info ti;
	tcp_get_info(c, &ti);
	*lost = link_drops;
	*rexmits = ti.rexmits;
	*ok = p->rx_len == n && !memcmp(p->rx, buf, n);
	free(buf);
	return (double)(now_us - t0) / 1e6;
}

/* tests/bench/bench_tcp_loss.sh: what a lost packet costs our sender on this fake link (0.2 ms
 * each way, 1 ms clock steps), to a receiver that keeps out-of-order segments (as Linux does)
 * and to one that drops them (as this stack does), at several loss rates in both directions. */
int main(void)
{
	net_init(&env);
	static const int rates[] = { 0, 1, 5, 10, 30 };
	for (int keep = 1; keep >= 0; keep--) {
		printf("receiver %s out-of-order segments: 8 MiB sent\n", keep ? "keeping" : "dropping");
		printf("  %-8s %8s %8s %8s %8s %8s %12s\n", "loss", "sim. s", "MiB/s", "lost", "rexmits", "ratio",
		       "ms per loss");
		double base = 0;
		for (unsigned i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
			world_reset();
			peer_keeps_ooo = keep;
			loss_pm = rates[i];
			uint64_t lost, rex;
			bool ok;
			double secs = send_time(8u << 20, &lost, &rex, &ok);
			if (i == 0)
				base = secs;
			printf("  %-6.1f%% %8.2f %8.1f %8llu %8llu %8.2f %12.2f%s\n", rates[i] / 10.0, secs, 8.0 / secs,
			       (unsigned long long)lost, (unsigned long long)rex, secs / base,
			       lost ? (secs - base) * 1000 / (double)lost : 0.0, ok ? "" : "  (incomplete)");
		}
	}
	net_reset();
	return 0;
}
#else
int main(void)
{
	net_init(&env);

	world_reset();
	int c = connect_and_wait();
	CHECK("connect: the handshake ends established", tcp_state(c) == TCP_ESTABLISHED);
	struct tcp_info ti;
	tcp_get_info(c, &ti);
	CHECK("connect: the peer's MSS is taken", ti.mss == 1460);
	CHECK("clean transfer of 1 MiB both ways arrives intact", transfer(c, 1u << 20, 60000, 1));
	tcp_get_info(c, &ti);
	CHECK("clean transfer: no retransmission", ti.rexmits == 0);
	CHECK("clean transfer: segments stay within the MSS", peer_of(c)->max_seg <= 1460);

	/* Loss and reordering both ways. */
	loss_pm = 50;
	reorder_pct = 10;
	CHECK("5% loss and 10% reordering: 1 MiB both ways arrives intact", transfer(c, 1u << 20, 600000, 2));
	tcp_get_info(c, &ti);
	CHECK("lossy transfer: lost segments were retransmitted", ti.rexmits > 0 && ifc.ctr.tcp_rexmit > 0);
	loss_pm = reorder_pct = 0;

	CHECK("without the peer's window scale option, nothing in flight beyond 64 KiB", max_unacked <= 65535);

	/* FIN both ways. */
	struct peer_conn *p = peer_of(c);
	p->send_fin_after = true;
	tcp_close(c);
	for (int i = 0; i < 5000 && tcp_state(c) != TCP_CLOSED; i++)
		step();
	CHECK("close: the peer got our FIN after the data", p->fin_rcvd);
	CHECK("close: FIN both ways ends in closed with no error", tcp_state(c) == TCP_CLOSED && tcp_error(c) == 0);
	CHECK("close: reading after the peer's FIN says the stream ended", tcp_recv(c, &ti, 1) == -E_GONE);
	tcp_release(c);

	/* Reordering alone, from the peer (whose sender has no fast retransmit, only a 300 ms go-back-N
	 * timer): our receiver keeps early segments, so nothing waits for that timer. */
	CHECK("20% reordering from the peer: 1 MiB arrives intact without the peer's timer",
	      receive_time(1u << 20, 20) < 2 * receive_time(1u << 20, 0) + 20000);

	/* Window scaling: a peer offering it and a 1 MiB window gets more than 64 KiB in flight. */
	world_reset();
	peer_wscale = 4;
	peer_wnd = 1u << 20;
	c = connect_and_wait();
	loss_pm = 10;
	CHECK("window scaling with 1% loss: 2 MiB both ways arrive intact", transfer(c, 2u << 20, 600000, 5));
	CHECK("window scaling: the scaled window lets more than 64 KiB fly", max_unacked > 65535);
	CHECK("window scaling: never beyond the scaled window", peer_of(c)->max_beyond_window == 0);
	loss_pm = 0;

	/* A small MSS and a small window from the peer. */
	world_reset();
	peer_mss = 536;
	peer_wnd = 4096;
	c = connect_and_wait();
	CHECK("small MSS and window: 256 KiB both ways arrive intact", transfer(c, 256u << 10, 120000, 3));
	p = peer_of(c);
	CHECK("small MSS: no segment is larger than the peer's MSS", p->max_seg <= 536);
	CHECK("small window: nothing is sent beyond the peer's window", p->max_beyond_window == 0);

	/* A zero window: data waits, a probe goes out, the transfer finishes when it opens. */
	peer_wnd = 0;
	uint8_t buf[20000];
	memset(buf, 0x5a, sizeof(buf));
	uint32_t before = p->rx_len;
	int k = tcp_send(c, buf, sizeof(buf));
	int s0 = sends;
	for (int i = 0; i < 3000; i++)
		step();
	CHECK("zero window: nothing but probes while it is closed", p->rx_len - before <= 1 && sends > s0);
	peer_wnd = 65535;
	peer_send_tcp(p, p->snd_nxt, 0, NULL, 0);   /* the window update */
	for (int i = 0; i < 10000 && p->rx_len - before < (uint32_t)k; i++)
		step();
	CHECK("zero window: the data goes once the window opens", k > 0 && p->rx_len - before == (uint32_t)k);

	/* Keepalive: an idle connection is probed; a silent peer kills it. */
	world_reset();
	c = connect_and_wait();
	p = peer_of(c);
	for (uint32_t i = 0; i < TCP_KEEPIDLE_MS + 2000; i++)
		step();
	CHECK("keepalive: an idle connection is probed and stays up", p->probes_seen >= 1 && tcp_state(c) == TCP_ESTABLISHED);
	peer_silent = true;
	for (uint32_t i = 0; i < TCP_KEEPIDLE_MS + (TCP_KEEPCNT + 2) * TCP_KEEPINTVL_MS && tcp_state(c) != TCP_CLOSED; i++)
		step();
	CHECK("keepalive: unanswered probes end the connection with a timeout",
	      tcp_state(c) == TCP_CLOSED && tcp_error(c) == -E_TIMEOUT);

	/* Retransmission back-off: the link from us goes dead with data outstanding. */
	world_reset();
	c = connect_and_wait();
	CHECK("back-off: a short transfer first (RTT estimate)", transfer(c, 64u << 10, 60000, 4));
	drop_all_from_us = 1;
	uint64_t times[TCP_RETRIES + 2];
	int nt = 0, last_sends = sends;
	tcp_send(c, buf, 1000);
	uint64_t t0 = now_us;
	for (int i = 0; i < 600000 && tcp_state(c) != TCP_CLOSED; i++) {
		step();
		if (sends != last_sends) {
			if (nt < TCP_RETRIES + 2)
				times[nt++] = now_us;
			last_sends = sends;
		}
	}
	bool doubling = nt >= 4;
	for (int i = 2; i < nt - 1; i++) {
		uint64_t a = times[i - 1] - times[i - 2], b = times[i] - times[i - 1];
		if (b < a * 19 / 10 && b < TCP_RTO_MAX_MS * 1000ULL * 9 / 10)
			doubling = false;
	}
	CHECK("back-off: each retransmission waits about twice as long as the one before", doubling);
	CHECK("back-off: the connection gives up after its retries with a timeout",
	      tcp_state(c) == TCP_CLOSED && tcp_error(c) == -E_TIMEOUT && nt >= TCP_RETRIES);
	printf("  gave up after %llu ms, %d sends\n", (unsigned long long)((now_us - t0) / 1000), nt);

	/* SYN retries against nobody, and a refusal. */
	world_reset();
	peer_silent = true;
	c = tcp_connect(IP_PEER, 10809);
	for (int i = 0; i < 200000 && tcp_state(c) == TCP_SYN_SENT; i++)
		step();
	CHECK("connect to nobody: SYN retries then a timeout", tcp_state(c) == TCP_CLOSED && tcp_error(c) == -E_TIMEOUT);
	world_reset();
	peer_refuse = true;
	c = connect_and_wait();
	CHECK("connect refused with RST: -E_RESET", tcp_state(c) == TCP_CLOSED && tcp_error(c) == -E_RESET);

	/* A reset in the middle of a connection. */
	world_reset();
	c = connect_and_wait();
	peer_of(c)->rst_on_data = true;
	tcp_send(c, buf, 100);
	for (int i = 0; i < 2000 && tcp_state(c) != TCP_CLOSED; i++)
		step();
	CHECK("a reset from the peer ends the connection with -E_RESET", tcp_state(c) == TCP_CLOSED &&
	      tcp_error(c) == -E_RESET && tcp_send(c, buf, 1) == -E_RESET);

	/* Several connections at once, with loss. */
	world_reset();
	loss_pm = 20;
	int cs[4];
	for (int i = 0; i < 4; i++)
		cs[i] = connect_and_wait();
	bool all = true;
	for (int i = 0; i < 4; i++)
		all &= tcp_state(cs[i]) == TCP_ESTABLISHED;
	CHECK("four connections are established at once", all);
	uint8_t *ob[4], *ib[4];
	uint32_t n = 200000, sent[4] = { 0 }, got[4] = { 0 };
	for (int i = 0; i < 4; i++) {
		ob[i] = malloc(n);
		ib[i] = malloc(n);
		for (uint32_t j = 0; j < n; j++)
			ob[i][j] = (uint8_t)(j * (i + 3));
		peer_of(cs[i])->tx = ob[i];
		peer_of(cs[i])->tx_len = n;
		peer_of(cs[i])->tx_base = peer_of(cs[i])->snd_nxt;
		peer_output(peer_of(cs[i]));
	}
	for (int ms = 0; ms < 300000; ms++) {
		bool done = true;
		for (int i = 0; i < 4; i++) {
			if (sent[i] < n) {
				int r = tcp_send(cs[i], ob[i] + sent[i], n - sent[i]);
				if (r > 0)
					sent[i] += (uint32_t)r;
			}
			int r = tcp_recv(cs[i], ib[i] + got[i], n - got[i]);
			if (r > 0)
				got[i] += (uint32_t)r;
			done &= got[i] == n && peer_of(cs[i])->rx_len == n;
		}
		if (done)
			break;
		step();
	}
	all = true;
	for (int i = 0; i < 4; i++)
		all &= got[i] == n && !memcmp(ib[i], ob[i], n) && peer_of(cs[i])->rx_len == n &&
		       !memcmp(peer_of(cs[i])->rx, ob[i], n);
	CHECK("four connections with loss: every stream arrives intact both ways", all);
	for (int i = 0; i < 4; i++) {
		peer_of(cs[i])->tx = NULL;
		free(ob[i]);
		free(ib[i]);
	}

	/* A segment for no connection is answered with a reset; a bad checksum is counted. */
	world_reset();
	uint64_t rst0 = ifc.ctr.tcp_rst_out;
	struct peer_conn stray = { .used = true, .port = 40000, .rcv_nxt = 5 };
	peer_send_tcp(&stray, 1234, 0, (const uint8_t *)"x", 1);
	for (int i = 0; i < 5; i++)
		step();
	CHECK("a segment for no connection gets a reset", ifc.ctr.tcp_rst_out == rst0 + 1);
	link_n = 0;
	peer_send_tcp(&stray, 1234, 0, (const uint8_t *)"x", 1);
	link_q[0].b[54] ^= 0x40;   /* one bit of the payload */
	uint64_t bad0 = ifc.ctr.bad_csum;
	for (int i = 0; i < 5; i++)
		step();
	CHECK("a segment with a wrong checksum is dropped and counted", ifc.ctr.bad_csum == bad0 + 1 &&
	      ifc.ctr.tcp_rst_out == rst0 + 1);
	net_reset();
	return CHECK_DONE();
}
#endif
