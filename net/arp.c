/* ARP (RFC 826) for IPv4 over Ethernet: a small cache, answers for our own address, requests
 * for the next hop with one packet kept waiting per destination. */
#include "net.h"

#define ARP_ENTRIES 16

struct arp_entry {
	struct netif *ifc;
	uint32_t ip;
	uint8_t mac[6];
	bool resolved;
	uint64_t stamp_us;           /* resolved: when learnt; pending: when the request went out */
	int requests;
	uint8_t *waiting;            /* one IPv4 packet waiting for the answer */
	uint32_t waiting_len;
};

static struct arp_entry cache[ARP_ENTRIES];

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void arp_send(struct netif *ifc, uint16_t op, const uint8_t tha[6], uint32_t tpa, const uint8_t dst[6])
{
	uint8_t p[28];
	put16(p, 1);          /* Ethernet */
	put16(p + 2, 0x0800); /* IPv4 */
	p[4] = 6;
	p[5] = 4;
	put16(p + 6, op);
	memcpy(p + 8, ifc->mac, 6);
	put32(p + 14, ifc->ip);
	memcpy(p + 18, tha, 6);
	put32(p + 24, tpa);
	eth_send(ifc, dst, 0x0806, p, sizeof(p));
}

static struct arp_entry *lookup(struct netif *ifc, uint32_t ip)
{
	for (int i = 0; i < ARP_ENTRIES; i++)
		if (cache[i].ifc == ifc && cache[i].ip == ip)
			return &cache[i];
	return NULL;
}

static void entry_clear(struct arp_entry *e)
{
	if (e->waiting)
		net_env()->free(e->waiting);
	memset(e, 0, sizeof(*e));
}

/* A free slot, else the oldest entry. */
static struct arp_entry *slot(void)
{
	struct arp_entry *old = &cache[0];
	for (int i = 0; i < ARP_ENTRIES; i++) {
		if (!cache[i].ifc)
			return &cache[i];
		if (cache[i].stamp_us < old->stamp_us)
			old = &cache[i];
	}
	entry_clear(old);
	return old;
}

static void learn(struct netif *ifc, uint32_t ip, const uint8_t mac[6], bool create)
{
	struct arp_entry *e = lookup(ifc, ip);
	if (!e) {
		if (!create)
			return;
		e = slot();
		e->ifc = ifc;
		e->ip = ip;
	}
	memcpy(e->mac, mac, 6);
	e->resolved = true;
	e->stamp_us = net_now_us();
	e->requests = 0;
	if (e->waiting) {
		uint8_t *w = e->waiting;
		e->waiting = NULL;
		eth_send(ifc, mac, 0x0800, w, e->waiting_len);
		net_env()->free(w);
	}
}

void arp_input(struct netif *ifc, const uint8_t *p, uint32_t len)
{
	if (len < 28 || get16(p) != 1 || get16(p + 2) != 0x0800 || p[4] != 6 || p[5] != 4) {
		ifc->ctr.bad_arp++;
		return;
	}
	uint16_t op = get16(p + 6);
	uint32_t spa = get32(p + 14), tpa = get32(p + 24);
	const uint8_t *sha = p + 8;
	if ((op != 1 && op != 2) || (sha[0] & 1) || spa == 0xffffffffu) {
		ifc->ctr.bad_arp++;   /* a multicast sender or a broadcast address: never cached */
		return;
	}
	bool for_us = ifc->ip && tpa == ifc->ip;
	/* RFC 826: update an entry we have; add one only when the packet is for us. */
	if (spa)
		learn(ifc, spa, sha, for_us);
	if (op == 1 && for_us)
		arp_send(ifc, 2, sha, spa, sha);
	else if (!for_us)
		ifc->ctr.not_ours++;
}

int arp_output(struct netif *ifc, uint32_t next_hop, const void *pkt, uint32_t len)
{
	uint32_t bc = ifc->ip | ~ifc->mask;
	if (next_hop == 0xffffffffu || (ifc->mask && next_hop == bc))
		return eth_send(ifc, bcast, 0x0800, pkt, len);
	struct arp_entry *e = lookup(ifc, next_hop);
	uint64_t now = net_now_us();
	if (e && e->resolved) {
		if (now - e->stamp_us > (uint64_t)ARP_TTL_MS * 1000 && e->requests == 0) {
			/* Refresh in the background; the old answer is used meanwhile. */
			e->requests = 1;
			arp_send(ifc, 1, (const uint8_t[6]){ 0 }, next_hop, e->mac);
		}
		return eth_send(ifc, e->mac, 0x0800, pkt, len);
	}
	if (!e) {
		e = slot();
		e->ifc = ifc;
		e->ip = next_hop;
	}
	if (e->waiting) {
		ifc->ctr.arp_miss++;   /* the older packet gives way to the newer */
		net_env()->free(e->waiting);
		e->waiting = NULL;
	}
	e->waiting = net_env()->alloc(len);
	if (e->waiting) {
		memcpy(e->waiting, pkt, len);
		e->waiting_len = len;
	}
	if (e->requests == 0) {
		e->requests = 1;
		e->stamp_us = now;
		arp_send(ifc, 1, (const uint8_t[6]){ 0 }, next_hop, bcast);
	}
	return 0;
}

void arp_tick(void)
{
	uint64_t now = net_now_us();
	for (int i = 0; i < ARP_ENTRIES; i++) {
		struct arp_entry *e = &cache[i];
		if (!e->ifc || e->resolved || now - e->stamp_us < 1000000)
			continue;
		if ((uint32_t)e->requests * 1000 >= ARP_TIMEOUT_MS) {
			if (e->waiting)
				e->ifc->ctr.arp_miss++;
			entry_clear(e);
			continue;
		}
		e->requests++;
		e->stamp_us = now;
		arp_send(e->ifc, 1, (const uint8_t[6]){ 0 }, e->ip, bcast);
	}
}

void arp_reset(void)
{
	for (int i = 0; i < ARP_ENTRIES; i++)
		entry_clear(&cache[i]);
}

bool arp_entry(int i, uint32_t *ip, uint8_t mac[6], struct netif **ifc)
{
	for (int k = 0; k < ARP_ENTRIES; k++)
		if (cache[k].ifc && cache[k].resolved && i-- == 0) {
			*ip = cache[k].ip;
			memcpy(mac, cache[k].mac, 6);
			*ifc = cache[k].ifc;
			return true;
		}
	return false;
}
