/* The DHCP client (RFC 2131): DISCOVER, OFFER, REQUEST, ACK with retries that back off,
 * renewal at T1, and the lease's address, mask and router put on the interface. */
#include "net.h"

enum { DHCP_IDLE, DHCP_SELECTING, DHCP_REQUESTING, DHCP_BOUND, DHCP_FAILED };
enum { MSG_DISCOVER = 1, MSG_OFFER = 2, MSG_REQUEST = 3, MSG_ACK = 5, MSG_NAK = 6 };
#define CLIENT_PORT 68
#define SERVER_PORT 67
#define BOOTP_FIXED 236u
#define MAGIC 0x63825363u

static void dhcp_recv(struct netif *ifc, uint32_t src, uint16_t sport, const uint8_t *p, uint32_t len);

int dhcp_parse(const uint8_t *p, uint32_t len, struct dhcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	if (len < BOOTP_FIXED + 4 || p[0] != 2 || p[1] != 1 || p[2] != 6 || get32(p + BOOTP_FIXED) != MAGIC)
		return -E_CORRUPT;
	m->xid = get32(p + 4);
	m->yiaddr = get32(p + 16);
	memcpy(m->chaddr, p + 28, 6);
	uint32_t i = BOOTP_FIXED + 4;
	while (i < len) {
		uint8_t code = p[i++];
		if (code == 0)
			continue;
		if (code == 255)
			break;
		if (i >= len || i + 1 + p[i] > len)
			return -E_CORRUPT;
		uint8_t olen = p[i++];
		const uint8_t *v = p + i;
		i += olen;
		switch (code) {
		case 53: if (olen >= 1) m->type = v[0]; break;
		case 1:  if (olen >= 4) m->mask = get32(v); break;
		case 3:  if (olen >= 4) m->router = get32(v); break;
		case 6:  if (olen >= 4) m->dns = get32(v); break;
		case 51: if (olen >= 4) m->lease_s = get32(v); break;
		case 54: if (olen >= 4) m->server = get32(v); break;
		default: break;
		}
	}
	if (!m->type)
		return -E_CORRUPT;
	return 0;
}

static void send_msg(struct netif *ifc, uint8_t type)
{
	uint8_t p[300];
	memset(p, 0, sizeof(p));
	p[0] = 1;
	p[1] = 1;
	p[2] = 6;
	put32(p + 4, ifc->dhcp.xid);
	put16(p + 10, 0x8000);   /* broadcast replies: we have no address to take unicast on */
	if (ifc->dhcp.state == DHCP_BOUND)
		put32(p + 12, ifc->ip);   /* renewing: ciaddr */
	memcpy(p + 28, ifc->mac, 6);
	put32(p + BOOTP_FIXED, MAGIC);
	uint32_t i = BOOTP_FIXED + 4;
	p[i++] = 53; p[i++] = 1; p[i++] = type;
	if (type == MSG_REQUEST && ifc->dhcp.state != DHCP_BOUND) {
		p[i++] = 50; p[i++] = 4; put32(p + i, ifc->dhcp.offered); i += 4;
		p[i++] = 54; p[i++] = 4; put32(p + i, ifc->dhcp.server); i += 4;
	}
	p[i++] = 55; p[i++] = 3; p[i++] = 1; p[i++] = 3; p[i++] = 6;   /* mask, router, DNS */
	p[i++] = 255;
	udp_send(ifc, ifc->dhcp.state == DHCP_BOUND ? ifc->ip : 0, 0xffffffffu, CLIENT_PORT, SERVER_PORT, p,
		 i < 300 ? 300 : i);
}

static void schedule_retry(struct netif *ifc)
{
	uint64_t wait_ms = (uint64_t)DHCP_FIRST_WAIT_MS << (ifc->dhcp.tries < 5 ? ifc->dhcp.tries : 5);
	ifc->dhcp.next_us = net_now_us() + wait_ms * 1000;
}

int dhcp_start(struct netif *ifc)
{
	int rc = udp_bind(CLIENT_PORT, dhcp_recv);
	if (rc < 0)
		return rc;
	struct dhcp_state *d = &ifc->dhcp;
	memset(d, 0, sizeof(*d));
	d->xid = net_env()->random();
	d->state = DHCP_SELECTING;
	d->result = -E_AGAIN;
	ifc->ip = ifc->mask = ifc->gw = 0;
	ifc->cfg = NET_CFG_NONE;
	send_msg(ifc, MSG_DISCOVER);
	schedule_retry(ifc);
	return 0;
}

static void bind_lease(struct netif *ifc, const struct dhcp_msg *m, enum net_cfg_source src)
{
	struct dhcp_state *d = &ifc->dhcp;
	bool renewal = d->state == DHCP_BOUND;
	ifc->ip = m->yiaddr;
	ifc->mask = m->mask ? m->mask : 0xffffff00u;
	ifc->gw = m->router;
	ifc->dns = m->dns;
	ifc->cfg = src;
	d->state = DHCP_BOUND;
	d->result = 0;
	d->tries = 0;
	d->lease_s = m->lease_s ? m->lease_s : 3600;
	uint64_t now = net_now_us();
	d->t1_us = now + (uint64_t)d->lease_s * 500000;   /* T1: half the lease */
	d->expire_us = now + (uint64_t)d->lease_s * 1000000;
	d->next_us = d->t1_us;
	if (!renewal) {
		char ip[16], gw[16];
		ip_format(ip, ifc->ip);
		ip_format(gw, ifc->gw);
		int bits = 0;
		for (uint32_t k = ifc->mask; k & 0x80000000u; k <<= 1)
			bits++;
		net_log(2, "%s: %s lease %s/%d, router %s, %u s", ifc->name, src == NET_CFG_PXE ? "PXE" : "DHCP",
			ip, bits, gw, d->lease_s);
	}
}

static void dhcp_recv(struct netif *ifc, uint32_t src, uint16_t sport, const uint8_t *p, uint32_t len)
{
	(void)src;
	struct dhcp_msg m;
	struct dhcp_state *d = &ifc->dhcp;
	if (sport != SERVER_PORT || dhcp_parse(p, len, &m) < 0) {
		ifc->ctr.bad_dhcp++;
		return;
	}
	if (m.xid != d->xid || memcmp(m.chaddr, ifc->mac, 6)) {
		ifc->ctr.not_ours++;
		return;
	}
	if (d->state == DHCP_SELECTING && m.type == MSG_OFFER && m.yiaddr && m.server) {
		d->offered = m.yiaddr;
		d->server = m.server;
		d->state = DHCP_REQUESTING;
		d->tries = 0;
		send_msg(ifc, MSG_REQUEST);
		schedule_retry(ifc);
	} else if ((d->state == DHCP_REQUESTING || d->state == DHCP_BOUND) && m.type == MSG_ACK && m.yiaddr) {
		bind_lease(ifc, &m, NET_CFG_DHCP);
	} else if (d->state == DHCP_REQUESTING && m.type == MSG_NAK) {
		net_log(1, "%s: DHCP server refused the address; starting over", ifc->name);
		d->state = DHCP_SELECTING;
		d->xid++;
		send_msg(ifc, MSG_DISCOVER);
		schedule_retry(ifc);
	} else {
		ifc->ctr.not_ours++;
	}
}

int dhcp_adopt(struct netif *ifc, const uint8_t *ack, uint32_t len)
{
	struct dhcp_msg m;
	if (dhcp_parse(ack, len, &m) < 0 || m.type != MSG_ACK || !m.yiaddr || memcmp(m.chaddr, ifc->mac, 6))
		return -E_CORRUPT;
	int rc = udp_bind(CLIENT_PORT, dhcp_recv);
	if (rc < 0)
		return rc;
	memset(&ifc->dhcp, 0, sizeof(ifc->dhcp));
	ifc->dhcp.xid = net_env()->random();
	ifc->dhcp.server = m.server;
	bind_lease(ifc, &m, NET_CFG_PXE);
	return 0;
}

void dhcp_tick(void)
{
	uint64_t now = net_now_us();
	for (int i = 0; i < net_count(); i++) {
		struct netif *ifc = net_get(i);
		struct dhcp_state *d = &ifc->dhcp;
		if (ifc->cfg == NET_CFG_STATIC || now < d->next_us)
			continue;
		if (d->state == DHCP_SELECTING || d->state == DHCP_REQUESTING) {
			if (++d->tries >= DHCP_TRIES) {
				net_log(1, "%s: no DHCP answer after %d tries", ifc->name, DHCP_TRIES);
				d->state = DHCP_FAILED;
				d->result = -E_TIMEOUT;
				continue;
			}
			send_msg(ifc, d->state == DHCP_SELECTING ? MSG_DISCOVER : MSG_REQUEST);
			schedule_retry(ifc);
		} else if (d->state == DHCP_BOUND) {
			if (now >= d->expire_us) {
				net_log(1, "%s: DHCP lease expired; asking again", ifc->name);
				dhcp_start(ifc);
				continue;
			}
			send_msg(ifc, MSG_REQUEST);   /* renewal; retried every tenth of the lease */
			d->next_us = now + (uint64_t)d->lease_s * 100000;
		}
	}
}
