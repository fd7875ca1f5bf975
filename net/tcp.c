/* TCP (RFC 793/9293) for a client that opens a few connections: active open with an MSS
 * option, send and receive buffers, the receive window, retransmission on a timer with RFC 6298
 * estimates, Karn's rule and exponential back-off, fast retransmit on three duplicate ACKs, slow
 * start and congestion avoidance, zero-window probes, keepalive, FIN and RST, window scaling
 * (RFC 7323) when the peer offers it, NewReno fast recovery (RFC 6582), and out-of-order
 * segments kept in the receive buffer where they belong (a few ranges) so that a loss costs
 * the sender only the hole. */
#include "net.h"

struct tcb {
	bool used, released;
	enum tcp_state state;
	int error;
	struct netif *ifc;
	uint32_t lip, rip;
	uint16_t lport, rport;
	/* Send side: tx holds the bytes from snd_una on (tx_len of them, from ring offset tx_head). */
	uint8_t *tx;
	uint32_t tx_head, tx_len;
	uint32_t iss, snd_una, snd_nxt, snd_wnd, mss;
	uint32_t snd_max;            /* the highest sequence sent: snd_nxt goes back on a timeout */
	uint32_t recover;            /* fast recovery (RFC 6582) lasts until this is acknowledged */
	bool in_recovery;
	uint8_t snd_shift, rcv_shift;   /* window scales: the peer's, ours (0 without the option) */
	bool fin_queued, fin_sent;
	uint32_t fin_seq;
	/* Receive side. */
	uint8_t *rx;
	uint32_t rx_head, rx_len, rcv_nxt, adv_wnd;
	/* Data that came early, already in the ring at its place beyond rx_len: sequence ranges,
	 * sorted, apart, all past rcv_nxt. */
	uint32_t ooo_start[TCP_OOO_RANGES], ooo_end[TCP_OOO_RANGES];
	int nooo;
	bool fin_rcvd, ack_now;
	/* Timers and estimates (us). */
	uint64_t rto_at;             /* 0: not running */
	uint32_t rto_us, srtt_us, rttvar_us;
	int retries;
	bool rtt_active;
	uint32_t rtt_seq;
	uint64_t rtt_start;
	uint32_t cwnd, ssthresh;
	int dupacks;
	uint64_t last_rx_us, tw_until;
	int keep_probes;
	uint64_t rexmits, bytes_in, bytes_out;
};

static struct tcb conns[TCP_CONNS];

static bool seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static bool seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

enum { F_FIN = 1, F_SYN = 2, F_RST = 4, F_PSH = 8, F_ACK = 16 };

static struct tcb *get(int c)
{
	return c >= 0 && c < TCP_CONNS && conns[c].used ? &conns[c] : NULL;
}

static uint32_t rx_free(const struct tcb *t) { return TCP_BUF - t->rx_len; }

static uint32_t window_to_advertise(struct tcb *t)
{
	uint32_t w = rx_free(t);
	if (w > (65535u << t->rcv_shift))
		w = 65535u << t->rcv_shift;
	if (w < t->mss && w < TCP_BUF / 4)
		w = 0;   /* no silly windows: wait until a segment's worth is free */
	return w >> t->rcv_shift << t->rcv_shift;   /* what the 16-bit field can say */
}

/* Sends one segment; data (len bytes) comes from the send ring at offset off from snd_una. */
static void send_segment(struct tcb *t, uint32_t seq, uint8_t flags, uint32_t off, uint32_t len)
{
	uint8_t s[NET_MTU - IP_HDR];
	uint32_t hl = (flags & F_SYN) ? 28 : 20;
	if (hl + len > sizeof(s))
		len = sizeof(s) - hl;
	put16(s, t->lport);
	put16(s + 2, t->rport);
	put32(s + 4, seq);
	put32(s + 8, (flags & F_ACK) ? t->rcv_nxt : 0);
	s[12] = (uint8_t)(hl / 4) << 4;
	s[13] = flags;
	t->adv_wnd = window_to_advertise(t);
	/* A SYN's window is never scaled (RFC 7323 2.2). */
	put16(s + 14, (flags & F_SYN) ? (uint16_t)(t->adv_wnd > 65535 ? 65535 : t->adv_wnd)
				      : (uint16_t)(t->adv_wnd >> t->rcv_shift));
	put16(s + 16, 0);
	put16(s + 18, 0);
	if (flags & F_SYN) {
		s[20] = 2;
		s[21] = 4;
		put16(s + 22, (uint16_t)(NET_MTU - IP_HDR - 20));
		s[24] = 1;   /* NOP, then the window scale we would use */
		s[25] = 3;
		s[26] = 3;
		s[27] = TCP_WSCALE;
	}
	for (uint32_t i = 0; i < len; ) {   /* the ring may wrap */
		uint32_t at = (t->tx_head + off + i) % TCP_BUF, n = len - i;
		if (n > TCP_BUF - at)
			n = TCP_BUF - at;
		memcpy(s + hl + i, t->tx + at, n);
		i += n;
	}
	put16(s + 16, inet_fold(inet_sum(inet_pseudo(t->lip, t->rip, IP_TCP, hl + len), s, hl + len)));
	t->ifc->ctr.tcp_out++;
	if (flags & F_RST)
		t->ifc->ctr.tcp_rst_out++;
	if (flags & F_ACK)
		t->ack_now = false;
	t->bytes_out += len;
	ipv4_output(t->ifc, t->lip, t->rip, IP_TCP, s, hl + len);
}

static void timer_start(struct tcb *t)
{
	t->rto_at = net_now_us() + t->rto_us;
}

static void set_closed(struct tcb *t, int error)
{
	t->state = TCP_CLOSED;
	t->rto_at = 0;
	if (error && !t->error)
		t->error = error;
	if (t->released) {
		struct net_env const *e = net_env();
		e->free(t->tx);
		e->free(t->rx);
		memset(t, 0, sizeof(*t));
	}
}

static uint32_t data_sent(const struct tcb *t)
{
	uint32_t inflight = t->snd_nxt - t->snd_una;
	return t->fin_sent ? inflight - 1 : inflight;
}

/* Sends what the windows allow, the FIN once all data is out, and a pending ACK. */
static void output(struct tcb *t)
{
	if (t->state == TCP_CLOSED || t->state == TCP_SYN_SENT || t->state == TCP_TIME_WAIT) {
		if (t->ack_now && t->state == TCP_TIME_WAIT)
			send_segment(t, t->snd_nxt, F_ACK, 0, 0);
		return;
	}
	uint32_t wnd = t->snd_wnd < t->cwnd ? t->snd_wnd : t->cwnd;
	while (!t->fin_sent) {
		uint32_t off = data_sent(t), flight = t->snd_nxt - t->snd_una;
		if (off >= t->tx_len || flight >= wnd)
			break;
		uint32_t n = t->tx_len - off;
		if (n > t->mss)
			n = t->mss;
		if (n > wnd - flight)
			n = wnd - flight;
		if (n < t->mss && n < t->tx_len - off && flight)
			break;   /* wait for the window to open rather than send slivers */
		uint8_t fl = F_ACK | (off + n == t->tx_len ? F_PSH : 0);
		if (!t->rtt_active) {
			t->rtt_active = true;
			t->rtt_seq = t->snd_nxt;
			t->rtt_start = net_now_us();
		}
		send_segment(t, t->snd_nxt, fl, off, n);
		t->snd_nxt += n;
		if (seq_lt(t->snd_max, t->snd_nxt))
			t->snd_max = t->snd_nxt;
		if (!t->rto_at)
			timer_start(t);
	}
	if (t->fin_queued && !t->fin_sent && data_sent(t) == t->tx_len &&
	    (t->state == TCP_ESTABLISHED || t->state == TCP_CLOSE_WAIT || t->state == TCP_FIN_WAIT_1 ||
	     t->state == TCP_LAST_ACK || t->state == TCP_CLOSING)) {
		t->fin_seq = t->snd_nxt;
		send_segment(t, t->snd_nxt, F_FIN | F_ACK, 0, 0);
		t->snd_nxt++;
		if (seq_lt(t->snd_max, t->snd_nxt))
			t->snd_max = t->snd_nxt;
		t->fin_sent = true;
		if (t->state == TCP_ESTABLISHED)
			t->state = TCP_FIN_WAIT_1;
		else if (t->state == TCP_CLOSE_WAIT)
			t->state = TCP_LAST_ACK;
		if (!t->rto_at)
			timer_start(t);
	}
	/* Data waiting on a closed window: the retransmission timer doubles as the persist timer. */
	if (!t->rto_at && t->snd_wnd == 0 && t->tx_len > data_sent(t))
		timer_start(t);
	if (t->ack_now)
		send_segment(t, t->snd_nxt, F_ACK, 0, 0);
}

static uint16_t ephemeral_port(void)
{
	for (;;) {
		uint16_t p = (uint16_t)(49152 + net_env()->random() % 16384);
		bool used = false;
		for (int i = 0; i < TCP_CONNS; i++)
			used |= conns[i].used && conns[i].lport == p;
		if (!used)
			return p;
	}
}

int tcp_connect(uint32_t dst, uint16_t port)
{
	uint32_t hop;
	struct netif *ifc = net_route(dst, &hop);
	if (!ifc)
		return -E_UNREACH;
	int c;
	for (c = 0; c < TCP_CONNS && conns[c].used; c++)
		;
	if (c == TCP_CONNS)
		return -E_BUSY;
	struct tcb *t = &conns[c];
	memset(t, 0, sizeof(*t));
	const struct net_env *e = net_env();
	t->tx = e->alloc(TCP_BUF);
	t->rx = e->alloc(TCP_BUF);
	if (!t->tx || !t->rx) {
		if (t->tx)
			e->free(t->tx);
		if (t->rx)
			e->free(t->rx);
		return -E_NOMEM;
	}
	t->used = true;
	t->ifc = ifc;
	t->lip = ifc->ip;
	t->rip = dst;
	t->lport = ephemeral_port();
	t->rport = port;
	t->iss = e->random();
	t->snd_una = t->iss;
	t->snd_nxt = t->snd_max = t->iss + 1;
	t->mss = TCP_MSS_DEFAULT;
	t->rto_us = TCP_RTO_INIT_MS * 1000;
	t->state = TCP_SYN_SENT;
	t->last_rx_us = t->rtt_start = net_now_us();
	send_segment(t, t->iss, F_SYN, 0, 0);
	timer_start(t);
	return c;
}

enum tcp_state tcp_state(int c)
{
	struct tcb *t = get(c);
	return t ? t->state : TCP_CLOSED;
}

int tcp_error(int c)
{
	struct tcb *t = get(c);
	return t ? t->error : -E_NOENT;
}

uint32_t tcp_send_room(int c)
{
	struct tcb *t = get(c);
	if (!t || t->fin_queued || (t->state != TCP_ESTABLISHED && t->state != TCP_CLOSE_WAIT))
		return 0;
	return TCP_BUF - t->tx_len;
}

int tcp_send(int c, const void *buf, uint32_t len)
{
	struct tcb *t = get(c);
	if (!t)
		return -E_NOENT;
	if (t->state == TCP_CLOSED)
		return t->error ? t->error : -E_GONE;
	uint32_t room = tcp_send_room(c);
	if (len > room)
		len = room;
	for (uint32_t i = 0; i < len; ) {
		uint32_t at = (t->tx_head + t->tx_len) % TCP_BUF, n = len - i;
		if (n > TCP_BUF - at)
			n = TCP_BUF - at;
		memcpy(t->tx + at, (const uint8_t *)buf + i, n);
		t->tx_len += n;
		i += n;
	}
	if (len)
		output(t);
	return (int)len;
}

uint32_t tcp_recv_avail(int c)
{
	struct tcb *t = get(c);
	return t ? t->rx_len : 0;
}

int tcp_recv(int c, void *buf, uint32_t len)
{
	struct tcb *t = get(c);
	if (!t)
		return -E_NOENT;
	if (!t->rx_len) {
		if (t->state == TCP_CLOSED)
			return t->error ? t->error : -E_GONE;
		return t->fin_rcvd ? -E_GONE : 0;
	}
	if (len > t->rx_len)
		len = t->rx_len;
	for (uint32_t i = 0; i < len; ) {
		uint32_t n = len - i;
		if (n > TCP_BUF - t->rx_head)
			n = TCP_BUF - t->rx_head;
		memcpy((uint8_t *)buf + i, t->rx + t->rx_head, n);
		t->rx_head = (t->rx_head + n) % TCP_BUF;
		t->rx_len -= n;
		i += n;
	}
	/* Tell the sender when the window has opened by a good part (it may be waiting on it). */
	uint32_t now_wnd = window_to_advertise(t);
	if (t->state != TCP_CLOSED && now_wnd >= t->adv_wnd + 2 * t->mss && t->adv_wnd < TCP_BUF / 2) {
		t->ack_now = true;
		output(t);
	}
	return (int)len;
}

void tcp_close(int c)
{
	struct tcb *t = get(c);
	if (!t)
		return;
	if (t->state == TCP_SYN_SENT) {
		set_closed(t, 0);
		return;
	}
	t->fin_queued = true;
	output(t);
}

void tcp_abort(int c)
{
	struct tcb *t = get(c);
	if (!t)
		return;
	if (t->state != TCP_CLOSED && t->state != TCP_SYN_SENT && t->state != TCP_TIME_WAIT)
		send_segment(t, t->snd_nxt, F_RST | F_ACK, 0, 0);
	t->released = true;
	set_closed(t, 0);
}

void tcp_release(int c)
{
	struct tcb *t = get(c);
	if (!t)
		return;
	t->released = true;
	if (t->state == TCP_CLOSED || t->state == TCP_SYN_SENT)
		set_closed(t, 0);
	else if (t->state == TCP_ESTABLISHED || t->state == TCP_CLOSE_WAIT)
		tcp_close(c);
}

/* Copies segment bytes into the receive ring at the place of sequence number seq (>= rcv_nxt;
 * the ring index of rcv_nxt is rx_head + rx_len). */
static void ring_put(struct tcb *t, uint32_t seq, const uint8_t *data, uint32_t n)
{
	uint32_t at = (t->rx_head + t->rx_len + (seq - t->rcv_nxt)) % TCP_BUF;
	for (uint32_t i = 0; i < n; ) {
		uint32_t k = n - i;
		if (k > TCP_BUF - at)
			k = TCP_BUF - at;
		memcpy(t->rx + at, data + i, k);
		at = (at + k) % TCP_BUF;
		i += k;
	}
}

/* Keeps an early segment [seq, seq + n) (within the window) as a range; false when the
 * ranges are all taken and it touches none of them. */
static bool ooo_add(struct tcb *t, uint32_t seq, const uint8_t *data, uint32_t n)
{
	uint32_t s = seq, e = seq + n;
	int i = 0;
	while (i < t->nooo && seq_lt(t->ooo_end[i], s))
		i++;
	if (i < t->nooo && seq_le(t->ooo_start[i], e)) {
		/* Overlaps or touches range i: grow it, then swallow the ranges it now reaches. */
		if (seq_lt(s, t->ooo_start[i]))
			t->ooo_start[i] = s;
		if (seq_lt(t->ooo_end[i], e))
			t->ooo_end[i] = e;
		while (i + 1 < t->nooo && seq_le(t->ooo_start[i + 1], t->ooo_end[i])) {
			if (seq_lt(t->ooo_end[i], t->ooo_end[i + 1]))
				t->ooo_end[i] = t->ooo_end[i + 1];
			memmove(&t->ooo_start[i + 1], &t->ooo_start[i + 2], sizeof(uint32_t) * (size_t)(t->nooo - i - 2));
			memmove(&t->ooo_end[i + 1], &t->ooo_end[i + 2], sizeof(uint32_t) * (size_t)(t->nooo - i - 2));
			t->nooo--;
		}
	} else {
		if (t->nooo == TCP_OOO_RANGES)
			return false;
		memmove(&t->ooo_start[i + 1], &t->ooo_start[i], sizeof(uint32_t) * (size_t)(t->nooo - i));
		memmove(&t->ooo_end[i + 1], &t->ooo_end[i], sizeof(uint32_t) * (size_t)(t->nooo - i));
		t->ooo_start[i] = s;
		t->ooo_end[i] = e;
		t->nooo++;
	}
	ring_put(t, seq, data, n);
	return true;
}

/* rcv_nxt moved: early ranges it reached become received data. */
static void ooo_advance(struct tcb *t)
{
	while (t->nooo && seq_le(t->ooo_start[0], t->rcv_nxt)) {
		if (seq_lt(t->rcv_nxt, t->ooo_end[0])) {
			uint32_t more = t->ooo_end[0] - t->rcv_nxt;
			t->rx_len += more;
			t->bytes_in += more;
			t->rcv_nxt = t->ooo_end[0];
		}
		t->nooo--;
		memmove(&t->ooo_start[0], &t->ooo_start[1], sizeof(uint32_t) * (size_t)t->nooo);
		memmove(&t->ooo_end[0], &t->ooo_end[1], sizeof(uint32_t) * (size_t)t->nooo);
	}
}

static void rst_reply(struct netif *ifc, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t dlen)
{
	/* RFC 9293 3.10.7.1: answer a segment for no connection with a reset. */
	struct tcb tmp;
	memset(&tmp, 0, sizeof(tmp));
	tmp.ifc = ifc;
	tmp.lip = dst;
	tmp.rip = src;
	tmp.lport = get16(p + 2);
	tmp.rport = get16(p);
	tmp.mss = TCP_MSS_DEFAULT;
	uint8_t fl = p[13];
	if (fl & F_ACK) {
		send_segment(&tmp, get32(p + 8), F_RST, 0, 0);
	} else {
		tmp.rcv_nxt = get32(p + 4) + dlen + ((fl & F_SYN) ? 1 : 0) + ((fl & F_FIN) ? 1 : 0);
		send_segment(&tmp, 0, F_RST | F_ACK, 0, 0);
	}
}

static void rto_from_estimates(struct tcb *t)
{
	uint64_t rto = (uint64_t)t->srtt_us + (4 * t->rttvar_us > 1000 ? 4 * t->rttvar_us : 1000);
	if (rto < TCP_RTO_MIN_MS * 1000)
		rto = TCP_RTO_MIN_MS * 1000;
	if (rto > TCP_RTO_MAX_MS * 1000)
		rto = TCP_RTO_MAX_MS * 1000;
	t->rto_us = (uint32_t)rto;
}

static void rtt_sample(struct tcb *t, uint32_t r)
{
	if (!r)
		r = 1;
	if (!t->srtt_us) {
		t->srtt_us = r;
		t->rttvar_us = r / 2;
	} else {
		uint32_t d = t->srtt_us > r ? t->srtt_us - r : r - t->srtt_us;
		t->rttvar_us = (3 * t->rttvar_us + d) / 4;
		t->srtt_us = (7 * t->srtt_us + r) / 8;
	}
	rto_from_estimates(t);
}

/* An acceptable ACK: frees acknowledged bytes, samples the RTT, grows the congestion window. */
static void process_ack(struct tcb *t, uint32_t ack, uint32_t wnd, bool has_payload)
{
	if (seq_lt(t->snd_max, ack)) {
		t->ack_now = true;   /* acknowledges what we never sent */
		return;
	}
	if (seq_lt(t->snd_nxt, ack))
		t->snd_nxt = ack;    /* data sent before a timeout went back arrived after all */
	if (seq_le(ack, t->snd_una)) {
		bool dup = ack == t->snd_una && !has_payload && wnd == t->snd_wnd && t->snd_nxt != t->snd_una;
		if (ack == t->snd_una)
			t->snd_wnd = wnd;
		if (dup && ++t->dupacks == 3 && !t->in_recovery) {
			/* Fast retransmit of the first unacknowledged segment, then fast recovery. */
			uint32_t flight = t->snd_nxt - t->snd_una;
			t->in_recovery = true;
			t->recover = t->snd_max;
			t->ssthresh = flight / 2 > 2 * t->mss ? flight / 2 : 2 * t->mss;
			t->cwnd = t->ssthresh;
			uint32_t n = t->tx_len < t->mss ? t->tx_len : t->mss;
			if (n) {
				send_segment(t, t->snd_una, F_ACK, 0, n);
				t->rexmits++;
				t->ifc->ctr.tcp_rexmit++;
				t->rtt_active = false;
			}
		}
		return;
	}
	uint32_t acked = ack - t->snd_una;
	bool fin_acked = t->fin_sent && seq_lt(t->fin_seq, ack);
	uint32_t data = fin_acked ? acked - 1 : acked;
	if (data > t->tx_len)
		data = t->tx_len;
	t->tx_head = (t->tx_head + data) % TCP_BUF;
	t->tx_len -= data;
	t->snd_una = ack;
	t->snd_wnd = wnd;
	t->dupacks = 0;
	t->retries = 0;
	if (t->rtt_active && seq_lt(t->rtt_seq, ack)) {
		t->rtt_active = false;
		rtt_sample(t, (uint32_t)(net_now_us() - t->rtt_start));
	} else if (t->srtt_us) {
		rto_from_estimates(t);   /* undo a back-off once data moves again */
	}
	if (t->cwnd < t->ssthresh)
		t->cwnd += data < t->mss ? data : t->mss;
	else
		t->cwnd += t->mss * t->mss / (t->cwnd ? t->cwnd : 1) + 1;
	if (t->cwnd > 4 * TCP_BUF)
		t->cwnd = 4 * TCP_BUF;
	t->rto_at = t->snd_nxt == t->snd_una ? 0 : net_now_us() + t->rto_us;
	if (t->in_recovery) {
		if (seq_lt(ack, t->recover)) {
			/* A partial ACK: the next hole is the segment it names; repeat it at once
			 * rather than wait for the timer (NewReno). */
			uint32_t n = t->tx_len < t->mss ? t->tx_len : t->mss;
			if (n) {
				send_segment(t, t->snd_una, F_ACK, 0, n);
				t->rexmits++;
				t->ifc->ctr.tcp_rexmit++;
			}
		} else {
			t->in_recovery = false;
			t->cwnd = t->ssthresh;
		}
	}
	if (fin_acked) {
		if (t->state == TCP_FIN_WAIT_1)
			t->state = TCP_FIN_WAIT_2;
		else if (t->state == TCP_CLOSING) {
			t->state = TCP_TIME_WAIT;
			t->tw_until = net_now_us() + TCP_TIME_WAIT_MS * 1000ULL;
		} else if (t->state == TCP_LAST_ACK)
			set_closed(t, 0);
	}
}

/* The SYN-ACK's options we use: MSS (0 when absent) and window scale (-1 when absent). */
static uint32_t parse_syn_options(const uint8_t *opt, uint32_t n, int *wscale)
{
	uint32_t mss = 0;
	*wscale = -1;
	for (uint32_t i = 0; i < n; ) {
		if (opt[i] == 0)
			break;
		if (opt[i] == 1) {
			i++;
			continue;
		}
		if (i + 1 >= n || opt[i + 1] < 2 || i + opt[i + 1] > n)
			break;
		if (opt[i] == 2 && opt[i + 1] == 4)
			mss = get16(opt + i + 2);
		else if (opt[i] == 3 && opt[i + 1] == 3)
			*wscale = opt[i + 2] > 14 ? 14 : opt[i + 2];   /* RFC 7323: at most 14 */
		i += opt[i + 1];
	}
	return mss;
}

void tcp_input(struct netif *ifc, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t len)
{
	if (len < 20 || (uint32_t)(p[12] >> 4) * 4 < 20 || (uint32_t)(p[12] >> 4) * 4 > len) {
		ifc->ctr.bad_tcp++;
		return;
	}
	if (inet_fold(inet_sum(inet_pseudo(src, dst, IP_TCP, len), p, len)) != 0) {
		ifc->ctr.bad_csum++;
		return;
	}
	ifc->ctr.tcp_in++;
	uint32_t hl = (uint32_t)(p[12] >> 4) * 4, dlen = len - hl;
	uint16_t sport = get16(p), dport = get16(p + 2);
	uint32_t seq = get32(p + 4), ack = get32(p + 8), wnd = get16(p + 14);
	uint8_t fl = p[13];
	const uint8_t *data = p + hl;
	struct tcb *t = NULL;
	/* wnd is scaled below, once the connection (and its shift) is known. */
	for (int i = 0; i < TCP_CONNS; i++)
		if (conns[i].used && conns[i].state != TCP_CLOSED && conns[i].lport == dport &&
		    conns[i].rport == sport && conns[i].rip == src && conns[i].lip == dst)
			t = &conns[i];
	if (!t) {
		ifc->ctr.not_ours++;
		if (!(fl & F_RST))
			rst_reply(ifc, src, dst, p, dlen);
		return;
	}
	if (fl & F_RST)
		ifc->ctr.tcp_rst_in++;
	t->last_rx_us = net_now_us();
	t->keep_probes = 0;

	if (t->state == TCP_SYN_SENT) {
		bool ack_ok = (fl & F_ACK) && ack == t->iss + 1;
		if (fl & F_RST) {
			if (ack_ok)
				set_closed(t, -E_RESET);   /* connection refused */
			return;
		}
		if ((fl & F_ACK) && !ack_ok) {
			rst_reply(ifc, src, dst, p, dlen);
			return;
		}
		if (!(fl & F_SYN) || !ack_ok)
			return;
		int ws;
		uint32_t mss = parse_syn_options(p + 20, hl - 20, &ws);
		/* Scaling only when both sides asked for it; the SYN-ACK's own window is unscaled. */
		t->snd_shift = ws >= 0 ? (uint8_t)ws : 0;
		t->rcv_shift = ws >= 0 ? TCP_WSCALE : 0;
		t->mss = mss >= 64 && mss <= NET_MTU - 40 ? mss : TCP_MSS_DEFAULT;
		if (mss > NET_MTU - 40)
			t->mss = NET_MTU - 40;
		t->rcv_nxt = seq + 1;
		t->snd_una = ack;
		t->snd_wnd = wnd;
		t->cwnd = 10 * t->mss;
		t->ssthresh = 4 * TCP_BUF;
		/* The SYN's round trip is a sample unless it was retransmitted (Karn). */
		if (t->retries == 0)
			rtt_sample(t, (uint32_t)(net_now_us() - t->rtt_start));
		t->retries = 0;
		t->rto_at = 0;
		t->state = TCP_ESTABLISHED;
		t->ack_now = true;
		output(t);
		return;
	}

	/* Acceptability (RFC 9293 3.10.7.4): some part of the segment inside the window. */
	uint32_t seglen = dlen + ((fl & F_FIN) ? 1 : 0);
	uint32_t rwnd = rx_free(t);
	bool acceptable = seglen == 0 ? (seq_le(t->rcv_nxt, seq) && seq_le(seq, t->rcv_nxt + (rwnd ? rwnd : 1)))
				      || seq == t->rcv_nxt - 1 /* keepalive probe */
				      : seq_lt(seq + seglen - 1, t->rcv_nxt + rwnd + 1) && seq_lt(t->rcv_nxt - 1, seq + seglen);
	if (fl & F_RST) {
		/* RFC 5961: only a reset at exactly rcv_nxt ends the connection; in-window ones get a
		 * challenge ACK. */
		if (seq == t->rcv_nxt)
			set_closed(t, -E_RESET);
		else if (acceptable)
			send_segment(t, t->snd_nxt, F_ACK, 0, 0);
		return;
	}
	if (!acceptable || (fl & F_SYN)) {
		t->ack_now = true;   /* old duplicate (or a repeated SYN-ACK): tell it where we are */
		output(t);
		return;
	}
	if (!(fl & F_ACK))
		return;
	process_ack(t, ack, wnd << t->snd_shift, dlen > 0);
	if (!t->used || t->state == TCP_CLOSED)
		return;

	/* What is already here is trimmed off a repeat; early data is kept at its place. */
	if (dlen || (fl & F_FIN)) {
		if (seq_lt(seq, t->rcv_nxt)) {
			uint32_t skip = t->rcv_nxt - seq;
			if (skip > dlen) {
				skip = dlen;
			}
			data += skip;
			dlen -= skip;
			seq += skip;
		}
		if (seq != t->rcv_nxt) {
			/* A gap: the duplicate ACK asks for what is missing; the data waits in place
			 * when it fits the window (a FIN past a gap is not kept: it comes again). */
			if (dlen && seq_lt(t->rcv_nxt, seq) && seq - t->rcv_nxt + dlen <= rx_free(t) &&
			    (t->state == TCP_ESTABLISHED || t->state == TCP_FIN_WAIT_1 || t->state == TCP_FIN_WAIT_2))
				ooo_add(t, seq, data, dlen);
			t->ack_now = true;
		} else {
			bool can_take = t->state == TCP_ESTABLISHED || t->state == TCP_FIN_WAIT_1 ||
					t->state == TCP_FIN_WAIT_2;
			uint32_t take = can_take ? (dlen < rx_free(t) ? dlen : rx_free(t)) : 0;
			for (uint32_t i = 0; i < take; ) {
				uint32_t at = (t->rx_head + t->rx_len) % TCP_BUF, n = take - i;
				if (n > TCP_BUF - at)
					n = TCP_BUF - at;
				memcpy(t->rx + at, data + i, n);
				t->rx_len += n;
				i += n;
			}
			t->rcv_nxt += take;
			t->bytes_in += take;
			ooo_advance(t);
			if (dlen)
				t->ack_now = true;
			if ((fl & F_FIN) && take == dlen && !t->fin_rcvd && seq + dlen == t->rcv_nxt) {
				t->rcv_nxt++;
				t->fin_rcvd = true;
				t->ack_now = true;
				if (t->state == TCP_ESTABLISHED)
					t->state = TCP_CLOSE_WAIT;
				else if (t->state == TCP_FIN_WAIT_1)
					t->state = TCP_CLOSING;
				else if (t->state == TCP_FIN_WAIT_2) {
					t->state = TCP_TIME_WAIT;
					t->tw_until = net_now_us() + TCP_TIME_WAIT_MS * 1000ULL;
				}
			}
		}
	}
	output(t);
}

static void on_rto(struct tcb *t)
{
	uint64_t now = net_now_us();
	if (t->state == TCP_SYN_SENT) {
		if (++t->retries > TCP_SYN_RETRIES) {
			set_closed(t, -E_TIMEOUT);
			return;
		}
		t->rto_us = t->rto_us * 2 > TCP_RTO_MAX_MS * 1000 ? TCP_RTO_MAX_MS * 1000 : t->rto_us * 2;
		send_segment(t, t->iss, F_SYN, 0, 0);
		t->rto_at = now + t->rto_us;
		return;
	}
	if (t->snd_nxt == t->snd_una && t->snd_wnd == 0 && t->tx_len) {
		/* Zero-window probe: one byte past the window; not a failure of the peer. */
		send_segment(t, t->snd_una, F_ACK, 0, 1);
		t->snd_nxt = t->snd_una + 1;
		t->rto_us = t->rto_us * 2 > TCP_RTO_MAX_MS * 1000 ? TCP_RTO_MAX_MS * 1000 : t->rto_us * 2;
		t->rto_at = now + t->rto_us;
		return;
	}
	if (t->snd_nxt == t->snd_una) {
		t->rto_at = 0;
		return;
	}
	if (++t->retries > TCP_RETRIES) {
		send_segment(t, t->snd_nxt, F_RST | F_ACK, 0, 0);
		set_closed(t, -E_TIMEOUT);
		return;
	}
	/* Go back to the first unacknowledged byte with one segment's window (RFC 5681 3.1). */
	uint32_t flight = t->snd_nxt - t->snd_una;
	t->ssthresh = flight / 2 > 2 * t->mss ? flight / 2 : 2 * t->mss;
	t->cwnd = t->mss;
	t->rto_us = t->rto_us * 2 > TCP_RTO_MAX_MS * 1000 ? TCP_RTO_MAX_MS * 1000 : t->rto_us * 2;
	t->rtt_active = false;
	t->snd_nxt = t->snd_una;
	t->in_recovery = false;
	t->recover = t->snd_max;
	if (t->fin_sent) {
		t->fin_sent = false;   /* sent again after the data */
		if (t->state == TCP_FIN_WAIT_1)
			t->state = TCP_ESTABLISHED;
		else if (t->state == TCP_LAST_ACK)
			t->state = TCP_CLOSE_WAIT;
		else if (t->state == TCP_CLOSING)
			t->state = TCP_CLOSE_WAIT;   /* the FIN we got stays received */
	}
	t->rexmits++;
	t->ifc->ctr.tcp_rexmit++;
	t->rto_at = 0;
	output(t);
	if (!t->rto_at)
		t->rto_at = now + t->rto_us;
}

void tcp_tick(void)
{
	uint64_t now = net_now_us();
	for (int i = 0; i < TCP_CONNS; i++) {
		struct tcb *t = &conns[i];
		if (!t->used || t->state == TCP_CLOSED)
			continue;
		if (t->state == TCP_TIME_WAIT) {
			if (now >= t->tw_until)
				set_closed(t, 0);
			continue;
		}
		if (t->rto_at && now >= t->rto_at) {
			on_rto(t);
			continue;
		}
		if (t->state == TCP_ESTABLISHED && t->snd_nxt == t->snd_una &&
		    now - t->last_rx_us >= (TCP_KEEPIDLE_MS + (uint64_t)t->keep_probes * TCP_KEEPINTVL_MS) * 1000) {
			if (t->keep_probes >= TCP_KEEPCNT) {
				net_log(1, "tcp: no answer to %d keepalive probes; the connection is dead", TCP_KEEPCNT);
				send_segment(t, t->snd_nxt, F_RST | F_ACK, 0, 0);
				set_closed(t, -E_TIMEOUT);
				continue;
			}
			t->keep_probes++;
			send_segment(t, t->snd_una - 1, F_ACK, 0, 0);
		}
		if (t->ack_now)
			output(t);
	}
}

void tcp_reset(void)
{
	for (int i = 0; i < TCP_CONNS; i++)
		if (conns[i].used) {
			net_env()->free(conns[i].tx);
			net_env()->free(conns[i].rx);
			memset(&conns[i], 0, sizeof(conns[i]));
		}
}

bool tcp_get_info(int c, struct tcp_info *o)
{
	struct tcb *t = get(c);
	if (!t)
		return false;
	*o = (struct tcp_info){ t->state, t->lip, t->rip, t->lport, t->rport, t->mss, t->snd_wnd,
				window_to_advertise(t), t->cwnd, t->rto_us / 1000, t->srtt_us / 1000,
				t->tx_len - data_sent(t), data_sent(t), t->rx_len, t->rexmits,
				t->bytes_in, t->bytes_out, t->error };
	return true;
}

const char *tcp_state_name(enum tcp_state s)
{
	static const char *const n[] = { "closed", "syn-sent", "established", "fin-wait-1", "fin-wait-2",
					  "closing", "time-wait", "close-wait", "last-ack" };
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}
