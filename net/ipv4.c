/* IPv4 (RFC 791): header checks and dispatch to ICMP, UDP and TCP, unfragmented output through
 * ARP, the Internet checksum, and dotted-quad text. Fragments are counted and dropped: nothing
 * this host talks to needs them (TCP stays under the MSS, DHCP under 576 bytes). */
#include "net.h"

/* RFC 1071: the one's complement sum does not care about byte order, so 32-bit words are
 * added as the machine loads them and the folded 16 bits read back in memory order, which is
 * network order on either kind of machine (a per-segment cost that shows under emulation). */
uint32_t inet_sum(uint32_t sum, const void *data, uint32_t len)
{
	const uint8_t *p = data;
	uint64_t acc = 0;
	for (; len >= 4; p += 4, len -= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		acc += w;
	}
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	uint16_t h = (uint16_t)acc;
	uint8_t b[2];
	memcpy(b, &h, 2);
	sum += (uint32_t)(b[0] << 8 | b[1]);
	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

uint16_t inet_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint32_t inet_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint32_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}

void ipv4_input(struct netif *ifc, const uint8_t *p, uint32_t len, bool l2_broadcast)
{
	if (len < IP_HDR || p[0] >> 4 != 4) {
		ifc->ctr.bad_ip++;
		return;
	}
	uint32_t hl = (uint32_t)(p[0] & 15) * 4, total = get16(p + 2);
	if (hl < IP_HDR || total < hl || total > len) {
		ifc->ctr.bad_ip++;
		return;
	}
	if (inet_fold(inet_sum(0, p, hl)) != 0) {
		ifc->ctr.bad_csum++;
		return;
	}
	uint16_t frag = get16(p + 6);
	if (frag & 0x3fff) {   /* more fragments, or an offset: a fragment */
		ifc->ctr.frags++;
		return;
	}
	uint32_t src = get32(p + 12), dst = get32(p + 16);
	bool bcast = dst == 0xffffffffu || (ifc->mask && ifc->ip && dst == (ifc->ip | ~ifc->mask));
	/* Before we have an address (DHCP) a unicast to the offered one is accepted too. */
	bool ours = (ifc->ip && dst == ifc->ip) || bcast || (!ifc->ip && !l2_broadcast);
	if (!ours || (src >> 24) == 127 || src == 0xffffffffu) {
		ifc->ctr.not_ours++;
		return;
	}
	const uint8_t *payload = p + hl;
	uint32_t plen = total - hl;
	switch (p[9]) {
	case IP_ICMP:
		if (!bcast)
			icmp_input(ifc, src, dst, payload, plen);
		else
			ifc->ctr.not_ours++;   /* no answers to broadcast pings */
		break;
	case IP_UDP:
		udp_input(ifc, src, dst, payload, plen);
		break;
	case IP_TCP:
		if (!bcast)
			tcp_input(ifc, src, dst, payload, plen);
		else
			ifc->ctr.bad_tcp++;
		break;
	default:
		ifc->ctr.not_ours++;
	}
}

int ipv4_output(struct netif *ifc, uint32_t src, uint32_t dst, uint8_t proto, const void *payload,
		uint32_t len)
{
	uint32_t hop = dst;
	if (!ifc) {
		ifc = net_route(dst, &hop);
		if (!ifc)
			return -E_UNREACH;
	} else if (dst != 0xffffffffu && ifc->ip && ((ifc->ip ^ dst) & ifc->mask) && ifc->gw) {
		hop = ifc->gw;
	}
	if (len > NET_MTU - IP_HDR)
		return -E_INVAL;
	static uint16_t ident;
	uint8_t pkt[NET_MTU];
	pkt[0] = 0x45;
	pkt[1] = 0;
	put16(pkt + 2, (uint16_t)(IP_HDR + len));
	put16(pkt + 4, ident++);
	put16(pkt + 6, 0x4000);   /* don't fragment */
	pkt[8] = 64;
	pkt[9] = proto;
	put16(pkt + 10, 0);
	put32(pkt + 12, src ? src : ifc->ip);
	put32(pkt + 16, dst);
	put16(pkt + 10, inet_fold(inet_sum(0, pkt, IP_HDR)));
	memcpy(pkt + IP_HDR, payload, len);
	return arp_output(ifc, hop, pkt, IP_HDR + len);
}

int ip_parse(const char *s, uint32_t *ip)
{
	uint32_t v = 0;
	for (int part = 0; part < 4; part++) {
		if (*s < '0' || *s > '9')
			return -E_INVAL;
		uint32_t n = 0;
		int digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4) {
			n = n * 10 + (uint32_t)(*s++ - '0');
			digits++;
		}
		if (n > 255 || digits > 3)
			return -E_INVAL;
		v = v << 8 | n;
		if (part < 3 && *s++ != '.')
			return -E_INVAL;
	}
	if (*s)
		return -E_INVAL;
	*ip = v;
	return 0;
}

void ip_format(char out[16], uint32_t ip)
{
	fmt_snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}
