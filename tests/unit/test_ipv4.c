/* The stack below TCP (kernel/net: Ethernet, ARP, IPv4, ICMP, UDP, DHCP) with a fake clock and
 * a captured link: the DHCP client's exchange, its retries backing off and giving up, a NAK, a
 * renewal, a lease taken from a PXE ACK; ARP requests answered and a waiting packet sent once
 * the answer comes; echo requests answered; and malformed frames dropped and counted by layer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../../net/net.h"

static uint64_t now_us = 5000000;
static uint64_t t_now(void) { return now_us; }
static void *t_alloc(size_t n) { return calloc(1, n); }
static uint32_t t_random(void) { return 0x1234abcd; }
static void t_log(int level, const char *msg) { (void)level; (void)msg; }
static const struct net_env env = { t_now, t_alloc, free, t_random, t_log };

#define OUT_MAX 64
static uint8_t out[OUT_MAX][NET_FRAME_MAX];
static uint32_t out_len[OUT_MAX];
static uint64_t out_at[OUT_MAX];
static int nout;
static int if_send(struct netif *ifc, const void *f, uint32_t len)
{
	(void)ifc;
	if (nout < OUT_MAX) {
		memcpy(out[nout], f, len);
		out_len[nout] = len;
		out_at[nout++] = now_us;
	}
	return 0;
}
static void if_poll(struct netif *ifc) { (void)ifc; }
static const struct netif_ops ops = { if_send, if_poll };
static struct netif ifc;
static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 }, srv_mac[6] = { 0x52, 0x55, 10, 0, 2, 2 };

static void reset(void)
{
	net_reset();
	memset(&ifc, 0, sizeof(ifc));
	memcpy(ifc.mac, mac, 6);
	ifc.ops = &ops;
	ifc.link = true;
	net_register(&ifc);
	nout = 0;
}

static void run_ms(uint64_t ms)
{
	for (uint64_t i = 0; i < ms; i++) {
		now_us += 1000;
		net_poll();
	}
}

static uint16_t csum(const uint8_t *p, uint32_t n, uint32_t sum) { return inet_fold(inet_sum(sum, p, n)); }

/* An IPv4/UDP frame from the server (10.0.2.2) to dst. */
static uint32_t udp_frame(uint8_t *f, uint32_t dst, uint16_t sport, uint16_t dport, const uint8_t *pl, uint32_t n)
{
	memcpy(f, mac, 6);
	memcpy(f + 6, srv_mac, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + 14, *u = ip + 20;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(28 + n));
	ip[8] = 64;
	ip[9] = 17;
	put32(ip + 12, 0x0a000202);
	put32(ip + 16, dst);
	put16(ip + 10, csum(ip, 20, 0));
	put16(u, sport);
	put16(u + 2, dport);
	put16(u + 4, (uint16_t)(8 + n));
	put16(u + 6, 0);
	memcpy(u + 8, pl, n);
	put16(u + 6, csum(u, 8 + n, inet_pseudo(0x0a000202, dst, 17, 8 + n)));
	return 14 + 28 + n;
}

/* A BOOTREPLY of `type` for the client's last xid. */
static uint32_t dhcp_reply(uint8_t *f, uint8_t type, uint32_t xid, uint32_t yiaddr, uint32_t lease)
{
	uint8_t p[300];
	memset(p, 0, sizeof(p));
	p[0] = 2;
	p[1] = 1;
	p[2] = 6;
	put32(p + 4, xid);
	put32(p + 16, yiaddr);
	memcpy(p + 28, mac, 6);
	put32(p + 236, 0x63825363);
	uint8_t *o = p + 240;
	*o++ = 53; *o++ = 1; *o++ = type;
	*o++ = 54; *o++ = 4; put32(o, 0x0a000202); o += 4;
	*o++ = 1; *o++ = 4; put32(o, 0xffffff00); o += 4;
	*o++ = 3; *o++ = 4; put32(o, 0x0a000202); o += 4;
	*o++ = 51; *o++ = 4; put32(o, lease); o += 4;
	*o++ = 255;
	return udp_frame(f, 0xffffffff, 67, 68, p, 300);
}

static int dhcp_type(int i)   /* the DHCP message type of sent frame i, or -1 */
{
	const uint8_t *f = out[i];
	if (get16(f + 12) != 0x0800 || f[23] != 17 || get16(f + 36) != 67)
		return -1;
	const uint8_t *p = f + 42;
	for (uint32_t k = 240; k + 2 < out_len[i] - 42; k += 2 + p[k + 1])
		if (p[k] == 53)
			return p[k + 2];
	return -1;
}

/* RFC 1071's sum the plain way, 16 bits at a time in network order, to check the fast one. */
static uint32_t ref_sum(uint32_t sum, const uint8_t *p, uint32_t len)
{
	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

int main(void)
{
	net_init(&env);
	uint8_t f[NET_FRAME_MAX];

	srand(7);
	int mismatches = 0;
	for (int it = 0; it < 20000; it++) {
		uint32_t n = (uint32_t)rand() % 1600, off = (uint32_t)rand() % 7, s0 = (uint32_t)rand() % 100000;
		uint8_t b[1610];
		for (uint32_t i = 0; i < n + off; i++)
			b[i] = (uint8_t)rand();
		mismatches += inet_fold(inet_sum(s0, b + off, n)) != inet_fold(ref_sum(s0, b + off, n));
	}
	CHECK("the Internet checksum equals RFC 1071's plain sum (any length, any alignment)", mismatches == 0);

	/* A full exchange. */
	reset();
	dhcp_start(&ifc);
	CHECK("DHCP starts with a DISCOVER, broadcast", nout == 1 && dhcp_type(0) == 1 && !memcmp(out[0], "\xff\xff\xff\xff\xff\xff", 6));
	uint32_t xid = get32(out[0] + 42 + 4);
	net_input(&ifc, f, dhcp_reply(f, 2, xid, 0x0a00020f, 86400));
	CHECK("an OFFER is answered with a REQUEST", nout == 2 && dhcp_type(1) == 3);
	net_input(&ifc, f, dhcp_reply(f, 5, xid, 0x0a00020f, 86400));
	CHECK("the ACK gives address, mask and router", ifc.ip == 0x0a00020f && ifc.mask == 0xffffff00 &&
	      ifc.gw == 0x0a000202 && ifc.cfg == NET_CFG_DHCP && ifc.dhcp.result == 0);
	nout = 0;
	now_us += 43199ULL * 1000000;   /* most of the way to T1 at once */
	run_ms(1010);
	CHECK("at half the lease a renewal REQUEST goes out", nout >= 1 && dhcp_type(0) == 3 && get32(out[0] + 42 + 12) == 0x0a00020f);
	net_input(&ifc, f, dhcp_reply(f, 5, xid, 0x0a00020f, 86400));
	CHECK("the renewal's ACK keeps the address", ifc.ip == 0x0a00020f && ifc.dhcp.result == 0);

	/* Retries: nobody answers. */
	reset();
	dhcp_start(&ifc);
	run_ms(70000);
	bool doubling = nout == DHCP_TRIES;
	for (int i = 2; i < nout; i++)
		doubling &= out_at[i] - out_at[i - 1] == 2 * (out_at[i - 1] - out_at[i - 2]);
	CHECK("unanswered DISCOVERs are repeated with a doubling wait", doubling && out_at[1] - out_at[0] == DHCP_FIRST_WAIT_MS * 1000);
	CHECK("after its tries the client gives up with a timeout", ifc.dhcp.result == -E_TIMEOUT && ifc.ip == 0);

	/* A NAK starts over; a reply for another transaction or client is ignored. */
	reset();
	dhcp_start(&ifc);
	xid = get32(out[0] + 42 + 4);
	net_input(&ifc, f, dhcp_reply(f, 2, xid + 1, 0x0a00020f, 60));
	CHECK("an OFFER for another transaction is ignored", nout == 1 && ifc.ctr.not_ours == 1);
	net_input(&ifc, f, dhcp_reply(f, 2, xid, 0x0a00020f, 60));
	net_input(&ifc, f, dhcp_reply(f, 6, xid, 0, 0));
	CHECK("a NAK sends a new DISCOVER", nout == 3 && dhcp_type(2) == 1 && ifc.ip == 0);

	/* A lease from the firmware's PXE ACK. */
	reset();
	uint32_t n = dhcp_reply(f, 5, 99, 0x0a000210, 3600);
	CHECK("a PXE ACK's lease is kept", dhcp_adopt(&ifc, f + 42, n - 42) == 0 && ifc.ip == 0x0a000210 &&
	      ifc.cfg == NET_CFG_PXE && ifc.gw == 0x0a000202);
	CHECK("an OFFER is not a lease to adopt", dhcp_adopt(&ifc, (dhcp_reply(f, 2, 99, 1, 1), f + 42), 300) == -E_CORRUPT);

	/* ARP: answered for our address; a packet waits for the next hop's answer. */
	reset();
	net_set_static(&ifc, 0x0a00020f, 0xffffff00, 0x0a000202);
	uint8_t arp[42];
	memset(arp, 0xff, 6);
	memcpy(arp + 6, srv_mac, 6);
	put16(arp + 12, 0x0806);
	uint8_t *a = arp + 14;
	put16(a, 1); put16(a + 2, 0x0800); a[4] = 6; a[5] = 4; put16(a + 6, 1);
	memcpy(a + 8, srv_mac, 6); put32(a + 14, 0x0a000202); memset(a + 18, 0, 6); put32(a + 24, 0x0a00020f);
	net_input(&ifc, arp, 42);
	CHECK("an ARP request for our address is answered", nout == 1 && get16(out[0] + 12) == 0x0806 &&
	      get16(out[0] + 20) == 2 && !memcmp(out[0], srv_mac, 6) && !memcmp(out[0] + 22, mac, 6));
	reset();
	net_set_static(&ifc, 0x0a00020f, 0xffffff00, 0x0a000202);
	udp_send(NULL, 0, 0x0a000203, 1000, 2000, "hello", 5);
	CHECK("a packet to an unknown neighbour waits behind an ARP request", nout == 1 && get16(out[0] + 12) == 0x0806 &&
	      get32(out[0] + 38) == 0x0a000203);
	memcpy(arp, mac, 6);
	put16(a + 6, 2); memcpy(a + 8, "\x02\x00\x00\x00\x00\x03", 6); put32(a + 14, 0x0a000203);
	memcpy(a + 18, mac, 6); put32(a + 24, 0x0a00020f);
	net_input(&ifc, arp, 42);
	CHECK("the answer sends the waiting packet to the learnt MAC", nout == 2 && get16(out[1] + 12) == 0x0800 &&
	      !memcmp(out[1], "\x02\x00\x00\x00\x00\x03", 6) && !memcmp(out[1] + 42, "hello", 5));
	udp_send(NULL, 0, 0x0a000299, 1000, 2000, "x", 1);
	run_ms(ARP_TIMEOUT_MS + 1500);
	CHECK("an unanswered ARP is retried, then its packet dropped and counted", nout >= 4 && ifc.ctr.arp_miss == 1);

	/* ICMP echo. */
	reset();
	net_set_static(&ifc, 0x0a00020f, 0xffffff00, 0x0a000202);
	uint8_t icmp[64];
	icmp[0] = 8; icmp[1] = 0; put16(icmp + 2, 0); put16(icmp + 4, 7); put16(icmp + 6, 1);
	for (int i = 8; i < 64; i++)
		icmp[i] = (uint8_t)i;
	put16(icmp + 2, csum(icmp, 64, 0));
	n = udp_frame(f, 0x0a00020f, 0, 0, NULL, 0);
	f[14 + 9] = 1;
	put16(f + 16, 20 + 64);
	put16(f + 24, 0);
	put16(f + 24, csum(f + 14, 20, 0));
	memcpy(f + 34, icmp, 64);
	memcpy(arp, mac, 6);
	net_input(&ifc, arp, 42);   /* the server's MAC is known (ARP reply above reused) */
	nout = 0;
	put32(a + 14, 0x0a000202);
	memcpy(a + 8, srv_mac, 6);
	net_input(&ifc, arp, 42);
	net_input(&ifc, f, 34 + 64);
	CHECK("an echo request gets an echo reply with the same data", nout == 1 && out[0][34] == 0 &&
	      !memcmp(out[0] + 38, icmp + 4, 60) && csum(out[0] + 34, 64, 0) == 0 && ifc.ctr.icmp_echo_in == 1);

	/* Malformed frames: each dropped and counted where it fails. */
	struct net_counters before = ifc.ctr;
	net_input(&ifc, f, 10);                           /* shorter than an Ethernet header */
	uint8_t g[NET_FRAME_MAX];
	memcpy(g, f, 98);
	g[14] = 0x46;                                     /* IHL 6 but the checksum says 5 */
	net_input(&ifc, g, 98);
	memcpy(g, f, 98);
	put16(g + 16, 2000);                              /* total length past the frame */
	net_input(&ifc, g, 98);
	memcpy(g, f, 98);
	put16(g + 20, 0x2000);                            /* more fragments */
	put16(g + 24, 0);
	put16(g + 24, csum(g + 14, 20, 0));
	net_input(&ifc, g, 98);
	memcpy(g, f, 98);
	g[40] ^= 1;                                       /* ICMP payload bit: its checksum fails */
	net_input(&ifc, g, 98);
	memcpy(g, f, 98);
	put16(g + 16, 20 + 4);                            /* an ICMP message of 4 bytes */
	put16(g + 24, 0);
	put16(g + 24, csum(g + 14, 20, 0));
	net_input(&ifc, g, 98);
	n = udp_frame(g, 0x0a00020f, 67, 68, (const uint8_t *)"abc", 3);
	put16(g + 38, 200);                               /* UDP length past the packet */
	net_input(&ifc, g, n);
	n = udp_frame(g, 0x0a00020f, 67, 68, (const uint8_t *)"abc", 3);
	dhcp_start(&ifc);
	net_input(&ifc, g, n);                            /* to the DHCP port: not a BOOTREPLY */
	memcpy(g, arp, 42);
	g[14 + 4] = 8;                                    /* hardware address length 8 */
	net_input(&ifc, g, 42);
	CHECK("malformed frames are counted by layer", ifc.ctr.bad_eth == before.bad_eth + 1 &&
	      ifc.ctr.bad_ip == before.bad_ip + 1 && ifc.ctr.bad_csum == before.bad_csum + 2 &&
	      ifc.ctr.frags == before.frags + 1 && ifc.ctr.bad_icmp == before.bad_icmp + 1 &&
	      ifc.ctr.bad_udp == before.bad_udp + 1 && ifc.ctr.bad_dhcp == before.bad_dhcp + 1 &&
	      ifc.ctr.bad_arp == before.bad_arp + 1);
	net_reset();
	return CHECK_DONE();
}
