/* The network stack in the appliance: its environment (clock, heap, log), the poller that
 * drives it, DHCP started on every interface at boot (or the `ip` setting's static address),
 * the `ip`, `gateway` and `syslog` settings and the event log over UDP. What the NIC drivers,
 * drivers/nbd.c and the commands (app/net_cmds.c) share. */
#include "console.h"
#include "../lib/args.h"
#include "log.h"
#include "mem.h"
#include "netif.h"
#include "settings.h"
#include "task.h"
#include "time.h"
#include "../net/net.h"
#include "../boot/bootinfo.h"
#include "../lib/errors.h"
#include "../lib/port.h"

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

void netif_start(void)
{
	if (started)
		return;
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
	netif_start();
	net_poll();
}
POLLER(net, net_poller);

static bool configured(void)
{
	for (int i = 0; i < net_count(); i++)
		if (net_get(i)->ip)
			return true;
	return false;
}

/* An interface has an address, or none can get one any more (no DHCP client still asking). */
static bool settled(void *unused)
{
	(void)unused;
	if (configured())
		return true;
	for (int i = 0; i < net_count(); i++)
		if (started && net_get(i)->dhcp.result == -E_AGAIN)
			return false;
	return started;
}

int net_wait_configured(uint32_t timeout_ms)
{
	if (!net_count()) {
		kprintf("no network interface\n");
		return -E_NOENT;
	}
	if (wait_yielding(settled, NULL, timeout_ms) == 0 && configured())
		return 0;
	kprintf("no interface has an address (net dhcp, or net ip <ifc> <addr>/<bits>)\n");
	return -E_UNREACH;
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

