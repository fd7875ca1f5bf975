/* libFuzzer target: the network stack's input path (Ethernet, ARP, IPv4, ICMP, UDP, DHCP, TCP)
 * must drop and count anything malformed without crashing, reading out of bounds or leaking.
 * The input is a series of frames, each a 16-bit big-endian length then its bytes, delivered to
 * an interface at 10.0.2.15/24 that has a DHCP client running, a ping out and a TCP connection
 * opening to 10.0.2.2:10809 (the environment is deterministic, so a seed can answer it). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../net/net.h"

static uint64_t now;
static uint32_t seed;
static uint64_t f_now(void) { return now; }
static void *f_alloc(size_t n) { return calloc(1, n); }
static uint32_t f_random(void) { return seed = seed * 1103515245u + 12345u; }
static void f_log(int level, const char *msg) { (void)level; (void)msg; }
static const struct net_env env = { f_now, f_alloc, free, f_random, f_log };

static int f_send(struct netif *ifc, const void *frame, uint32_t len)
{
	(void)ifc;
	(void)frame;
	return len > NET_FRAME_MAX ? -E_INVAL : 0;
}
static void f_poll(struct netif *ifc) { (void)ifc; }
static const struct netif_ops ops = { f_send, f_poll };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct netif ifc;
	now = 1000000;
	seed = 1;
	net_init(&env);
	net_reset();
	memset(&ifc, 0, sizeof(ifc));
	const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	memcpy(ifc.mac, mac, 6);
	ifc.ops = &ops;
	ifc.link = true;
	net_register(&ifc);
	dhcp_start(&ifc);
	net_set_static(&ifc, 0x0a00020f, 0xffffff00u, 0x0a000202);
	ifc.dhcp.state = 1;   /* and a DHCP exchange still listening for its offer */
	icmp_ping_send(0x0a000202, 1, 1, 56);
	int c = tcp_connect(0x0a000202, 10809);
	size_t at = 0;
	while (at + 2 <= size) {
		uint32_t n = (uint32_t)data[at] << 8 | data[at + 1];
		at += 2;
		if (n > size - at)
			n = (uint32_t)(size - at);
		/* A copy of exactly n bytes, so that ASan sees any read past the frame. */
		uint8_t *f = malloc(n ? n : 1);
		memcpy(f, data + at, n);
		net_input(&ifc, f, n);
		free(f);
		at += n;
		now += 1000;
		net_poll();
		uint8_t buf[512];
		if (c >= 0) {
			tcp_recv(c, buf, sizeof(buf));
			tcp_send(c, "NBDMAGIC", 8);
		}
	}
	now += 120ULL * 1000000;   /* every timer fires once */
	net_poll();
	net_reset();
	return 0;
}
