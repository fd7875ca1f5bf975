/* ICMP (RFC 792): answers echo requests, sends ours for `ping` and matches the replies;
 * other messages are counted and ignored. */
#include "net.h"

#define PING_SLOTS 8

struct ping_slot { uint16_t id, seq; uint64_t sent_us; int64_t rtt_us; bool used; };
static struct ping_slot pings[PING_SLOTS];
static unsigned ping_next;

void icmp_input(struct netif *ifc, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t len)
{
	(void)dst;
	if (len < 8 || inet_fold(inet_sum(0, p, len)) != 0) {
		if (len < 8)
			ifc->ctr.bad_icmp++;
		else
			ifc->ctr.bad_csum++;
		return;
	}
	if (p[0] == 8 && p[1] == 0) {   /* echo request: the same bytes back as a reply */
		uint8_t r[NET_MTU - IP_HDR];
		if (len > sizeof(r)) {
			ifc->ctr.bad_icmp++;
			return;
		}
		memcpy(r, p, len);
		r[0] = 0;
		put16(r + 2, 0);
		put16(r + 2, inet_fold(inet_sum(0, r, len)));
		ifc->ctr.icmp_echo_in++;
		ipv4_output(ifc, ifc->ip, src, IP_ICMP, r, len);
		return;
	}
	if (p[0] == 0 && p[1] == 0) {   /* echo reply */
		uint16_t id = get16(p + 4), seq = get16(p + 6);
		for (int i = 0; i < PING_SLOTS; i++)
			if (pings[i].used && pings[i].id == id && pings[i].seq == seq && pings[i].rtt_us < 0) {
				pings[i].rtt_us = (int64_t)(net_now_us() - pings[i].sent_us);
				return;
			}
	}
	ifc->ctr.not_ours++;
}

int icmp_ping_send(uint32_t dst, uint16_t id, uint16_t seq, uint32_t payload_len)
{
	uint8_t m[NET_MTU - IP_HDR];
	if (payload_len > sizeof(m) - 8)
		return -E_INVAL;
	m[0] = 8;
	m[1] = 0;
	put16(m + 2, 0);
	put16(m + 4, id);
	put16(m + 6, seq);
	for (uint32_t i = 0; i < payload_len; i++)
		m[8 + i] = (uint8_t)(i + 0x20);
	put16(m + 2, inet_fold(inet_sum(0, m, 8 + payload_len)));
	struct ping_slot *s = &pings[ping_next++ % PING_SLOTS];
	*s = (struct ping_slot){ id, seq, net_now_us(), -1, true };
	int rc = ipv4_output(NULL, 0, dst, IP_ICMP, m, 8 + payload_len);
	if (rc == 0) {
		uint32_t hop;
		struct netif *ifc = net_route(dst, &hop);
		if (ifc)
			ifc->ctr.icmp_echo_out++;
	}
	return rc;
}

void icmp_reset(void)
{
	memset(pings, 0, sizeof(pings));
	ping_next = 0;
}

int64_t icmp_ping_reply(uint16_t id, uint16_t seq)
{
	for (int i = 0; i < PING_SLOTS; i++)
		if (pings[i].used && pings[i].id == id && pings[i].seq == seq)
			return pings[i].rtt_us >= 0 ? pings[i].rtt_us : -E_AGAIN;
	return -E_AGAIN;
}
