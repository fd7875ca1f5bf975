/* UDP (RFC 768): a few bound ports with a handler each (DHCP's client port, syslog needs none),
 * checksummed output. */
#include "net.h"

#define UDP_PORTS 8

static struct { uint16_t port; udp_handler fn; } ports[UDP_PORTS];

int udp_bind(uint16_t port, udp_handler fn)
{
	for (int i = 0; i < UDP_PORTS; i++)
		if (ports[i].port == port || !ports[i].port) {
			ports[i].port = port;
			ports[i].fn = fn;
			return 0;
		}
	return -E_NOSPC;
}

void udp_reset(void)
{
	memset(ports, 0, sizeof(ports));
}

void udp_unbind(uint16_t port)
{
	for (int i = 0; i < UDP_PORTS; i++)
		if (ports[i].port == port)
			ports[i].port = 0;
}

void udp_input(struct netif *ifc, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t len)
{
	if (len < 8 || get16(p + 4) < 8 || get16(p + 4) > len) {
		ifc->ctr.bad_udp++;
		return;
	}
	uint32_t ulen = get16(p + 4);
	if (get16(p + 6) && inet_fold(inet_sum(inet_pseudo(src, dst, IP_UDP, ulen), p, ulen)) != 0) {
		ifc->ctr.bad_csum++;
		return;
	}
	ifc->ctr.udp_in++;
	uint16_t dport = get16(p + 2);
	for (int i = 0; i < UDP_PORTS; i++)
		if (ports[i].port == dport && ports[i].fn) {
			ports[i].fn(ifc, src, get16(p), p + 8, ulen - 8);
			return;
		}
	ifc->ctr.udp_noport++;
}

int udp_send(struct netif *ifc, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
	     const void *payload, uint32_t len)
{
	uint8_t d[NET_MTU - IP_HDR];
	if (len > sizeof(d) - 8)
		return -E_INVAL;
	uint32_t hop;
	struct netif *out = ifc ? ifc : net_route(dst, &hop);
	if (!out)
		return -E_UNREACH;
	uint32_t s = src ? src : out->ip;
	put16(d, sport);
	put16(d + 2, dport);
	put16(d + 4, (uint16_t)(8 + len));
	put16(d + 6, 0);
	memcpy(d + 8, payload, len);
	uint16_t sum = inet_fold(inet_sum(inet_pseudo(s, dst, IP_UDP, 8 + len), d, 8 + len));
	put16(d + 6, sum ? sum : 0xffff);
	out->ctr.udp_out++;
	return ipv4_output(out, s ? s : 0, dst, IP_UDP, d, 8 + len);
}
