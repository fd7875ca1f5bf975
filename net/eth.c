/* The stack's core and its Ethernet layer: the interface table, frame input dispatch (IPv4,
 * ARP), frame output, routing to an interface and next hop, and the timers' poll. */
#include "net.h"

static const struct net_env *env;
static struct netif *ifs[NET_IFS_MAX];
static int nifs;

void net_init(const struct net_env *e) { env = e; }
const struct net_env *net_env(void) { return env; }
uint64_t net_now_us(void) { return env->now_us(); }

void net_log(int level, const char *fmt, ...)
{
	char msg[160];
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (env && env->log)
		env->log(level, msg);
}

int net_register(struct netif *ifc)
{
	if (nifs == NET_IFS_MAX)
		return -E_NOSPC;
	fmt_snprintf(ifc->name, sizeof(ifc->name), "eth%d", nifs);
	ifs[nifs++] = ifc;
	return 0;
}

int net_count(void) { return nifs; }
struct netif *net_get(int i) { return i >= 0 && i < nifs ? ifs[i] : NULL; }

struct netif *net_find(const char *name)
{
	for (int i = 0; i < nifs; i++)
		if (!strcmp(ifs[i]->name, name))
			return ifs[i];
	return NULL;
}

void net_set_static(struct netif *ifc, uint32_t ip, uint32_t mask, uint32_t gw)
{
	ifc->dhcp.state = 0;
	ifc->ip = ip;
	ifc->mask = mask;
	ifc->gw = gw;
	ifc->cfg = ip ? NET_CFG_STATIC : NET_CFG_NONE;
}

struct netif *net_route(uint32_t ip, uint32_t *next_hop)
{
	for (int i = 0; i < nifs; i++)
		if (ifs[i]->ip && ((ifs[i]->ip ^ ip) & ifs[i]->mask) == 0) {
			*next_hop = ip;
			return ifs[i];
		}
	for (int i = 0; i < nifs; i++)
		if (ifs[i]->ip && ifs[i]->gw) {
			*next_hop = ifs[i]->gw;
			return ifs[i];
		}
	return NULL;
}

int eth_send(struct netif *ifc, const uint8_t dst[6], uint16_t type, const void *payload, uint32_t len)
{
	uint8_t f[NET_FRAME_MAX];
	if (len > NET_MTU)
		return -E_INVAL;
	memcpy(f, dst, 6);
	memcpy(f + 6, ifc->mac, 6);
	put16(f + 12, type);
	memcpy(f + ETH_HDR, payload, len);
	uint32_t n = ETH_HDR + len;
	if (n < 60) {   /* the minimum frame, padded with zeros */
		memset(f + n, 0, 60 - n);
		n = 60;
	}
	int rc = ifc->ops->send(ifc, f, n);
	if (rc < 0) {
		ifc->ctr.tx_busy++;
		return rc;
	}
	ifc->ctr.tx_frames++;
	ifc->ctr.tx_bytes += n;
	return 0;
}

void net_input(struct netif *ifc, const uint8_t *f, uint32_t len)
{
	ifc->ctr.rx_frames++;
	ifc->ctr.rx_bytes += len;
	if (len < ETH_HDR || len > NET_FRAME_MAX + 4) {   /* +4: a VLAN tag or an FCS left on */
		ifc->ctr.bad_eth++;
		return;
	}
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	bool is_bcast = !memcmp(f, bcast, 6);
	if (!is_bcast && memcmp(f, ifc->mac, 6)) {
		ifc->ctr.not_ours++;   /* multicast, or another host's (promiscuous NIC) */
		return;
	}
	uint16_t type = get16(f + 12);
	if (type == 0x0800)
		ipv4_input(ifc, f + ETH_HDR, len - ETH_HDR, is_bcast);
	else if (type == 0x0806)
		arp_input(ifc, f + ETH_HDR, len - ETH_HDR);
	else
		ifc->ctr.not_ours++;
}

void net_reset(void)
{
	arp_reset();
	udp_reset();
	icmp_reset();
	tcp_reset();
	memset(ifs, 0, sizeof(ifs));
	nifs = 0;
}

void net_poll(void)
{
	for (int i = 0; i < nifs; i++)
		ifs[i]->ops->poll(ifs[i]);
	arp_tick();
	dhcp_tick();
	tcp_tick();
}
