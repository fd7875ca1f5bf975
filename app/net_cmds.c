/* The network commands: `net` (interfaces, counters, ARP cache, connections, NBD disks; DHCP,
 * a static address, attaching an NBD export) and `ping`, over the stack's glue (kernel/netif.c). */
#include "../kernel/console.h"
#include "../kernel/netif.h"
#include "../kernel/shell.h"
#include "../kernel/task.h"
#include "../kernel/time.h"
#include "../drivers/nbd.h"
#include "../net/net.h"
#include "../lib/args.h"
#include "../lib/errors.h"
#include "../lib/port.h"

#define PING_TIMEOUT_MS  2000u   /* per echo request */
#define NET_WAIT_ADDR_MS 20000u  /* commands that need an address wait this long for DHCP */

static int prefix_bits(uint32_t mask)
{
	int bits = 0;
	for (; mask & 0x80000000u; mask <<= 1)
		bits++;
	return bits;
}

static void print_ifc(struct netif *ifc)
{
	static const char *const src[] = { "none", "static", "dhcp", "pxe" };
	char ip[16], gw[16];
	ip_format(ip, ifc->ip);
	ip_format(gw, ifc->gw);
	const struct net_counters *c = &ifc->ctr;
	kprintf("%s  %s  mac %02x:%02x:%02x:%02x:%02x:%02x  link %s\n", ifc->name, ifc->driver,
		ifc->mac[0], ifc->mac[1], ifc->mac[2], ifc->mac[3], ifc->mac[4], ifc->mac[5],
		ifc->link ? "up" : "down");
	if (ifc->ip)
		kprintf("  inet %s/%d  gateway %s  (%s)\n", ip, prefix_bits(ifc->mask), gw, src[ifc->cfg]);
	else
		kprintf("  no address (%s)\n", ifc->dhcp.result == -E_AGAIN ? "DHCP in progress" :
			ifc->dhcp.result == -E_TIMEOUT ? "DHCP gave up" : "not configured");
	kprintf("  rx %llu frames %llu bytes  tx %llu frames %llu bytes  tx-busy %llu  resets %llu\n",
		(unsigned long long)c->rx_frames, (unsigned long long)c->rx_bytes,
		(unsigned long long)c->tx_frames, (unsigned long long)c->tx_bytes,
		(unsigned long long)c->tx_busy, (unsigned long long)c->resets);
	kprintf("  dropped: eth %llu arp %llu ip %llu icmp %llu udp %llu tcp %llu dhcp %llu checksum %llu fragments %llu arp-miss %llu not-ours %llu\n",
		(unsigned long long)c->bad_eth, (unsigned long long)c->bad_arp, (unsigned long long)c->bad_ip,
		(unsigned long long)c->bad_icmp, (unsigned long long)c->bad_udp, (unsigned long long)c->bad_tcp,
		(unsigned long long)c->bad_dhcp, (unsigned long long)c->bad_csum, (unsigned long long)c->frags,
		(unsigned long long)c->arp_miss, (unsigned long long)c->not_ours);
	kprintf("  icmp echo in %llu out %llu  udp in %llu out %llu  tcp in %llu out %llu rexmit %llu rst in %llu out %llu\n",
		(unsigned long long)c->icmp_echo_in, (unsigned long long)c->icmp_echo_out,
		(unsigned long long)c->udp_in, (unsigned long long)c->udp_out,
		(unsigned long long)c->tcp_in, (unsigned long long)c->tcp_out, (unsigned long long)c->tcp_rexmit,
		(unsigned long long)c->tcp_rst_in, (unsigned long long)c->tcp_rst_out);
}

static void print_conns(void)
{
	for (int i = 0; i < TCP_CONNS; i++) {
		struct tcp_info t;
		if (!tcp_get_info(i, &t))
			continue;
		char l[16], r[16];
		ip_format(l, t.lip);
		ip_format(r, t.rip);
		kprintf("tcp%d  %s:%u -> %s:%u  %s  mss %u wnd %u/%u cwnd %u rto %u ms srtt %u ms  in %llu out %llu rexmit %llu%s%s\n",
			i, l, t.lport, r, t.rport, tcp_state_name(t.state), t.mss, t.snd_wnd, t.rcv_wnd, t.cwnd,
			t.rto_ms, t.srtt_ms, (unsigned long long)t.bytes_in, (unsigned long long)t.bytes_out,
			(unsigned long long)t.rexmits, t.error ? "  " : "", t.error ? err_str(t.error) : "");
	}
}

static struct netif *ifc_arg(const char *name)
{
	struct netif *ifc = net_find(name);
	if (!ifc)
		kprintf("no interface '%s' (see net)\n", name);
	return ifc;
}

static int net_dhcp_cmd(int argc, char **argv)
{
	if (argc > 3)
		return -E_USAGE;
	struct netif *ifc = argc == 3 ? ifc_arg(argv[2]) : net_get(0);
	if (!ifc)
		return argc == 3 ? -E_NOENT : (kprintf("no network interface\n"), -E_NOENT);
	netif_start();
	int rc = dhcp_start(ifc);
	if (rc < 0)
		return rc;
	while (ifc->dhcp.result == -E_AGAIN) {
		if (console_interrupted())
			return -E_INTR;
		task_yield();
	}
	if (ifc->dhcp.result < 0)
		return ifc->dhcp.result;
	print_ifc(ifc);
	return 0;
}

/* net ip <ifc> <addr>/<bits> [gateway] | net ip <ifc> off */
static int net_ip_cmd(int argc, char **argv)
{
	if (argc != 4 && argc != 5)
		return -E_USAGE;
	struct netif *ifc = ifc_arg(argv[2]);
	if (!ifc)
		return -E_NOENT;
	if (!strcmp(argv[3], "off") && argc == 4) {
		net_set_static(ifc, 0, 0, 0);
		return 0;
	}
	char a[20];
	const char *slash = strchr(argv[3], '/');
	uint64_t bits = 24;
	size_t n = slash ? (size_t)(slash - argv[3]) : strlen(argv[3]);
	uint32_t ip, gw = 0;
	if (n >= sizeof(a))
		return -E_USAGE;
	memcpy(a, argv[3], n);
	a[n] = '\0';
	if (ip_parse(a, &ip) < 0 || (slash && (args_u64(slash + 1, &bits) < 0 || bits < 1 || bits > 31)) ||
	    (argc == 5 && ip_parse(argv[4], &gw) < 0)) {
		kprintf("net ip: addresses are dotted quads, the prefix 1..31\n");
		return -E_USAGE;
	}
	net_set_static(ifc, ip, (uint32_t)(0xffffffffu << (32 - bits)), gw);
	print_ifc(ifc);
	return 0;
}

static int cmd_net(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "dhcp"))
		return net_dhcp_cmd(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "ip"))
		return net_ip_cmd(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "nbd"))
		return nbd_attach_cmd(argc, argv);
	if (argc != 1)
		return -E_USAGE;
	if (!net_count()) {
		kprintf("no network interface\n");
		return 0;
	}
	for (int i = 0; i < net_count(); i++)
		print_ifc(net_get(i));
	uint32_t ip;
	uint8_t mac[6];
	struct netif *ifc;
	for (int i = 0; arp_entry(i, &ip, mac, &ifc); i++) {
		char s[16];
		ip_format(s, ip);
		kprintf("arp  %s  %s is %02x:%02x:%02x:%02x:%02x:%02x\n", ifc->name, s, mac[0], mac[1], mac[2],
			mac[3], mac[4], mac[5]);
	}
	print_conns();
	nbd_print_all();
	return 0;
}
COMMAND(net, "net | net dhcp [<ifc>] | net ip <ifc> <addr>/<bits> [<gateway>] | net ip <ifc> off | net nbd <host>[:<port>] <export>",
	"network interfaces, addresses, counters, connections; DHCP, static address, NBD disks",
	"net: every interface (MAC, link, address, counters of frames and of drops by layer), the ARP\n"
	"cache, TCP connections and NBD disks. net dhcp asks for a lease and waits for it. net ip\n"
	"sets a static address (prefix default 24). net nbd attaches an NBD export (port 10809 by\n"
	"default) as the next nbd<N> disk.",
	cmd_net);

struct ping_wait { uint16_t id, seq; int64_t rtt; };

static bool reply_came(void *ctx)
{
	struct ping_wait *w = ctx;
	return (w->rtt = icmp_ping_reply(w->id, w->seq)) != -E_AGAIN;
}

static int cmd_ping(int argc, char **argv)
{
	uint64_t count = 4;
	uint32_t ip;
	uint16_t port = 0;
	if (argc < 2 || argc > 3 || net_parse_host(argv[1], &ip, &port) < 0 || port ||
	    (argc == 3 && (args_u64(argv[2], &count) < 0 || count == 0 || count > 1000)))
		return -E_USAGE;
	int rc = net_wait_configured(NET_WAIT_ADDR_MS);
	if (rc < 0)
		return rc;
	static uint16_t id = 0x4300;
	id++;
	unsigned got = 0;
	for (uint16_t seq = 1; seq <= count; seq++) {
		rc = icmp_ping_send(ip, id, seq, 56);
		if (rc == -E_UNREACH)
			return rc;   /* no interface has a route: every request would say the same */
		if (rc < 0) {
			kprintf("not sent to %s: seq %u (%s)\n", argv[1], seq, err_str(rc));   /* link down */
			task_sleep_us(PING_TIMEOUT_MS * 1000ULL / 4);
			continue;
		}
		struct ping_wait w = { id, seq, -E_AGAIN };
		if (wait_yielding(reply_came, &w, PING_TIMEOUT_MS) == -E_INTR)
			return -E_INTR;
		int64_t rtt = w.rtt;
		if (rtt >= 0) {
			got++;
			kprintf("reply from %s: seq %u time %llu.%03llu ms\n", argv[1], seq,
				(unsigned long long)(rtt / 1000), (unsigned long long)(rtt % 1000));
			task_sleep_us(rtt < 500000 ? 500000 - (uint64_t)rtt : 0);
		} else {
			kprintf("no reply from %s: seq %u\n", argv[1], seq);
		}
	}
	kprintf("%s: %u sent, %u received\n", argv[1], (unsigned)count, got);
	return got ? 0 : -E_UNREACH;
}
COMMAND(ping, "ping <address> [count]", "ICMP echo to an IPv4 address (default 4 requests)", NULL, cmd_ping);
