/* The network stack in the appliance: its environment (clock, heap, log), the poller that
 * drives it, DHCP started on every interface at boot (or the `ip` setting's static address),
 * the `ip`, `gateway` and `syslog` settings, the event log over UDP, and the `net` and `ping`
 * commands. */
#include "console.h"
#include "../lib/args.h"
#include "log.h"
#include "mem.h"
#include "net_cmds.h"
#include "settings.h"
#include "shell.h"
#include "task.h"
#include "time.h"
#include "../net/net.h"
#include "../boot/bootinfo.h"
#include "../lib/errors.h"
#include "../lib/port.h"

#define PING_TIMEOUT_MS  2000u   /* per echo request */
#define NET_WAIT_ADDR_MS 20000u  /* commands that need an address wait this long for DHCP */

static uint32_t net_random(void)
{
	static uint64_t s;
	uint32_t lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	s ^= ((uint64_t)hi << 32 | lo) * 0x9E3779B97F4A7C15ULL;
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return (uint32_t)(s >> 16);
}

static void net_log_event(int level, const char *msg)
{
	log_event(level == 0 ? LOG_ERR : level == 1 ? LOG_WARN : LOG_INFO, "%s", msg);
}

static const struct net_env kenv = { time_now_us, kzalloc, kfree, net_random, net_log_event };
static bool started;

/* ---- settings: eth0's static address, its gateway, the syslog server ---- */
static uint64_t set_ip;        /* 0: DHCP; else address << 8 | prefix bits */
static uint64_t set_gw;        /* 0: none */
static uint64_t set_syslog;    /* 0: off; else address << 16 | port */

static void apply_ip(void)
{
	struct netif *ifc = net_get(0);
	if (!ifc || !started)
		return;
	if (!set_ip) {
		dhcp_start(ifc);
		return;
	}
	uint32_t bits = (uint32_t)(set_ip & 0xff);
	net_set_static(ifc, (uint32_t)(set_ip >> 8), 0xffffffffu << (32 - bits), (uint32_t)set_gw);
}

static void apply_gw(void)
{
	struct netif *ifc = net_get(0);
	if (ifc && ifc->cfg == NET_CFG_STATIC)
		ifc->gw = (uint32_t)set_gw;
}

static int parse_ip(const char *t, uint64_t *v)
{
	if (!strcmp(t, "dhcp")) {
		*v = 0;
		return 0;
	}
	char a[20];
	const char *slash = strchr(t, '/');
	size_t n = slash ? (size_t)(slash - t) : strlen(t);
	uint64_t bits = 24;
	uint32_t ip;
	if (n < sizeof(a)) {
		memcpy(a, t, n);
		a[n] = '\0';
		if (ip_parse(a, &ip) == 0 && ip && (!slash || (args_u64(slash + 1, &bits) == 0 && bits >= 1 && bits <= 31))) {
			*v = (uint64_t)ip << 8 | bits;
			return 0;
		}
	}
	kprintf("set: ip takes dhcp or <a.b.c.d>[/<bits>] (bits 1..31, default 24)\n");
	return -E_INVAL;
}

static void format_ip(uint64_t v, char *out, int outlen)
{
	char s[16];
	ip_format(s, (uint32_t)(v >> 8));
	if (v)
		fmt_snprintf(out, (size_t)outlen, "%s/%u", s, (unsigned)(v & 0xff));
	else
		fmt_snprintf(out, (size_t)outlen, "dhcp");
}

static int parse_gw(const char *t, uint64_t *v)
{
	uint32_t ip;
	if (!strcmp(t, "none")) {
		*v = 0;
		return 0;
	}
	if (ip_parse(t, &ip) == 0) {
		*v = ip;
		return 0;
	}
	kprintf("set: gateway takes none or <a.b.c.d>\n");
	return -E_INVAL;
}

static void format_gw(uint64_t v, char *out, int outlen)
{
	if (v)
		ip_format(out, (uint32_t)v);
	else
		fmt_snprintf(out, (size_t)outlen, "none");
}

static int parse_syslog(const char *t, uint64_t *v)
{
	uint32_t ip;
	uint16_t port = 514;
	if (!strcmp(t, "off")) {
		*v = 0;
		return 0;
	}
	if (net_parse_host(t, &ip, &port) == 0 && ip) {
		*v = (uint64_t)ip << 16 | port;
		return 0;
	}
	kprintf("set: syslog takes off or <a.b.c.d>[:<port>] (UDP, default port 514)\n");
	return -E_INVAL;
}

static void format_syslog(uint64_t v, char *out, int outlen)
{
	char s[16];
	ip_format(s, (uint32_t)(v >> 16));
	if (v)
		fmt_snprintf(out, (size_t)outlen, "%s:%u", s, (unsigned)(v & 0xffff));
	else
		fmt_snprintf(out, (size_t)outlen, "off");
}

SETTING_FN(net_ip, "ip", "eth0's address: dhcp, or a.b.c.d/bits (static)", &set_ip, parse_ip, format_ip, apply_ip);
SETTING_FN(net_gw, "gateway", "eth0's router with a static address (none, a.b.c.d)", &set_gw, parse_gw,
	   format_gw, apply_gw);
SETTING_FN(net_syslog, "syslog", "send the event log to this syslog server over UDP (off, a.b.c.d[:port])",
	   &set_syslog, parse_syslog, format_syslog, NULL);

/* RFC 5424 messages (facility local0) from the first interface's address. */
static void syslog_sink(enum log_level lvl, const char *msg)
{
	static bool busy;   /* an event logged while sending one is not sent again */
	if (!set_syslog || busy || !started)
		return;
	busy = true;
	static const int sev[] = { 3, 4, 6, 7 };
	struct netif *ifc = net_get(0);
	char line[200];
	int n = fmt_snprintf(line, sizeof(line), "<%d>1 - cowboot-%02x%02x%02x%02x%02x%02x cowboot - - - %s",
			     16 * 8 + sev[lvl], ifc->mac[0], ifc->mac[1], ifc->mac[2], ifc->mac[3], ifc->mac[4],
			     ifc->mac[5], msg);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	udp_send(NULL, 0, (uint32_t)(set_syslog >> 16), 514, (uint16_t)(set_syslog & 0xffff), line, (uint32_t)n);
	busy = false;
}

/* Booted over PXE: the boot NIC keeps the firmware's lease. */
static void adopt_pxe_lease(void)
{
	const struct boot_info *bi = boot_info_get();
	if (!bi->netboot || !bi->pxe_ack_len)
		return;
	for (int i = 0; i < net_count(); i++) {
		struct netif *ifc = net_get(i);
		if (ifc->pci_bus == bi->boot_pci_bus && ifc->pci_dev == bi->boot_pci_dev &&
		    ifc->pci_fn == bi->boot_pci_fn && !(i == 0 && set_ip) &&
		    dhcp_adopt(ifc, bi->pxe_ack, bi->pxe_ack_len) < 0)
			log_event(LOG_WARN, "%s: the PXE lease is not usable; asking by DHCP", ifc->name);
	}
}

static void net_start(void)
{
	started = true;
	net_init(&kenv);
	log_set_sink(syslog_sink);
	adopt_pxe_lease();
	for (int i = 0; i < net_count(); i++)
		if (net_get(i)->cfg == NET_CFG_NONE && !(i == 0 && set_ip))
			dhcp_start(net_get(i));
	if (set_ip)
		apply_ip();
}

static void net_poller(void)
{
	if (!net_count())
		return;
	if (!started)
		net_start();
	net_poll();
}
POLLER(net, net_poller);

int net_wait_configured(uint32_t timeout_ms)
{
	if (!net_count()) {
		kprintf("no network interface\n");
		return -E_NOENT;
	}
	deadline_t d = deadline_in_ms(timeout_ms);
	for (;;) {
		bool waiting = false;
		for (int i = 0; i < net_count(); i++) {
			struct netif *ifc = net_get(i);
			if (ifc->ip)
				return 0;
			waiting |= started && ifc->dhcp.result == -E_AGAIN;
		}
		if ((started && !waiting) || deadline_passed(d) || console_interrupted()) {
			kprintf("no interface has an address (net dhcp, or net ip <ifc> <addr>/<bits>)\n");
			return -E_UNREACH;
		}
		task_yield();
	}
}

/* "10.0.2.2" or "10.0.2.2:10809" (no names: there is no DNS). */
int net_parse_host(const char *s, uint32_t *ip, uint16_t *port)
{
	char host[32];
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	if (n >= sizeof(host))
		return -E_INVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (ip_parse(host, ip) < 0)
		return -E_INVAL;
	if (colon) {
		uint64_t p;
		if (args_u64(colon + 1, &p) < 0 || p == 0 || p > 65535)
			return -E_INVAL;
		*port = (uint16_t)p;
	}
	return 0;
}

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
	if (!started)
		net_start();
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
		deadline_t d = deadline_in_ms(PING_TIMEOUT_MS);
		int64_t rtt;
		while ((rtt = icmp_ping_reply(id, seq)) == -E_AGAIN && !deadline_passed(d)) {
			if (console_interrupted())
				return -E_INTR;
			task_yield();
		}
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
