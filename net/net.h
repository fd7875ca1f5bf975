/* The network stack's interface: network interfaces (a driver's send/poll and its MAC), their
 * IPv4 configuration and counters, and the protocol entry points (ARP, IPv4, ICMP, UDP, DHCP,
 * TCP). Pure code: it includes only cow/ and itself, so it builds into the image and into host
 * tests and fuzzers; the environment (clock, allocator, random, log) is handed in. */
#ifndef KERNEL_NET_NET_H
#define KERNEL_NET_NET_H

#include "../lib/port.h"
#include "../lib/errors.h"

#define NET_MTU        1500u
#define NET_FRAME_MAX  1514u   /* Ethernet header + MTU, no FCS */
#define NET_IFS_MAX    4
#define ETH_HDR        14u

/* What the stack needs from its host. */
struct net_env {
	uint64_t (*now_us)(void);
	void *(*alloc)(size_t n);          /* zeroed */
	void (*free)(void *p);
	uint32_t (*random)(void);
	void (*log)(int level, const char *msg);   /* 0 error, 1 warning, 2 info */
};

struct netif;
struct netif_ops {
	/* Queues one Ethernet frame (no FCS); 0, or -E_BUSY when the ring is full (the frame is
	 * dropped and counted: the protocols above retransmit). */
	int (*send)(struct netif *ifc, const void *frame, uint32_t len);
	/* Reaps received frames, handing each to net_input(); checks the link and a stuck ring. */
	void (*poll)(struct netif *ifc);
};

/* Every drop is counted where it happens: `net` shows them. */
struct net_counters {
	uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
	uint64_t tx_busy;            /* the driver's ring was full */
	uint64_t rx_ring_full;       /* the driver had no buffer (reported by drivers) */
	uint64_t resets;             /* driver resets of a stuck ring */
	uint64_t bad_eth, bad_arp, bad_ip, bad_icmp, bad_udp, bad_tcp, bad_dhcp;
	uint64_t bad_csum;           /* checksum wrong in IPv4/ICMP/UDP/TCP */
	uint64_t not_ours;           /* well formed but not for this host or unhandled protocol */
	uint64_t frags;              /* IPv4 fragments (not reassembled: dropped) */
	uint64_t arp_miss;           /* packets dropped waiting for an ARP answer */
	uint64_t icmp_echo_in, icmp_echo_out;
	uint64_t udp_in, udp_out, udp_noport;
	uint64_t tcp_in, tcp_out, tcp_rexmit, tcp_rst_in, tcp_rst_out;
};

enum net_cfg_source { NET_CFG_NONE, NET_CFG_STATIC, NET_CFG_DHCP, NET_CFG_PXE };

struct dhcp_state {
	int state;                   /* DHCP_* in dhcp.c */
	uint32_t xid, offered, server, lease_s;
	int tries;
	uint64_t next_us, t1_us, expire_us;
	int result;                  /* 0 bound, -E_AGAIN in progress, -E_TIMEOUT gave up */
};

struct netif {
	char name[8];                /* eth0, eth1: given by net_register */
	const char *driver;          /* "virtio-net" */
	uint8_t mac[6];
	bool link;                   /* drivers keep this current */
	const struct netif_ops *ops;
	void *drv;
	int pci_bus, pci_dev, pci_fn;   /* where the NIC is (-1: not on PCI), to find the PXE one */
	/* IPv4 configuration (host byte order). */
	uint32_t ip, mask, gw, dns;
	enum net_cfg_source cfg;
	struct dhcp_state dhcp;
	struct net_counters ctr;
};

/* ---- the stack as a whole (eth.c) ---- */
void net_init(const struct net_env *env);
const struct net_env *net_env(void);
/* Gives the interface a name (eth<N>) and an index; -E_NOSPC when the table is full. */
int net_register(struct netif *ifc);
int net_count(void);
struct netif *net_get(int i);
struct netif *net_find(const char *name);
/* A received Ethernet frame (untrusted). */
void net_input(struct netif *ifc, const uint8_t *frame, uint32_t len);
/* Forgets every interface, cache entry, binding and connection (host tests and fuzzers). */
void net_reset(void);
void arp_reset(void);
void udp_reset(void);
void icmp_reset(void);
void tcp_reset(void);
/* Polls every interface, then runs the protocols' timers (ARP, DHCP, TCP). */
void net_poll(void);
/* The interface that reaches ip (same subnet, else the first with a gateway), and the next hop. */
struct netif *net_route(uint32_t ip, uint32_t *next_hop);
/* Sends an Ethernet frame to dst MAC: payload is copied behind the 14-byte header. */
int eth_send(struct netif *ifc, const uint8_t dst[6], uint16_t type, const void *payload, uint32_t len);
void net_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t net_now_us(void);

/* Configures an interface by hand (static) or clears it (ip 0). */
void net_set_static(struct netif *ifc, uint32_t ip, uint32_t mask, uint32_t gw);

/* ---- ARP (arp.c) ---- */
#define ARP_TIMEOUT_MS   3000u   /* an unanswered request: packets waiting are dropped */
#define ARP_TTL_MS     300000u   /* entries are refreshed after this */
void arp_input(struct netif *ifc, const uint8_t *p, uint32_t len);
/* Sends an IPv4 packet (header included) to next_hop: at once when its MAC is known, else it
 * waits (one packet per destination) for the ARP answer. */
int arp_output(struct netif *ifc, uint32_t next_hop, const void *ip_packet, uint32_t len);
void arp_tick(void);
/* Known entries, for `net`: returns false past the end. */
bool arp_entry(int i, uint32_t *ip, uint8_t mac[6], struct netif **ifc);

/* ---- IPv4 (ipv4.c) ---- */
enum { IP_ICMP = 1, IP_TCP = 6, IP_UDP = 17 };
#define IP_HDR 20u
void ipv4_input(struct netif *ifc, const uint8_t *p, uint32_t len, bool l2_broadcast);
/* Sends payload to dst as one unfragmented packet (payload <= NET_MTU - 20). src 0: the
 * interface's address. ifc NULL: routed. */
int ipv4_output(struct netif *ifc, uint32_t src, uint32_t dst, uint8_t proto, const void *payload,
		uint32_t len);
/* Internet checksum helpers. */
uint32_t inet_sum(uint32_t sum, const void *p, uint32_t len);
uint16_t inet_fold(uint32_t sum);
uint32_t inet_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint32_t len);
/* "10.0.2.15" -> host order; -E_INVAL when it is not a dotted quad. */
int ip_parse(const char *s, uint32_t *ip);
void ip_format(char out[16], uint32_t ip);

/* Big-endian accessors for packet bytes. */
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* ---- ICMP (icmp.c) ---- */
void icmp_input(struct netif *ifc, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t len);
/* Sends one echo request; replies are matched by icmp_ping_poll. */
int icmp_ping_send(uint32_t dst, uint16_t id, uint16_t seq, uint32_t payload_len);
/* The round trip in us of the reply to (id, seq), or -E_AGAIN while none came. */
int64_t icmp_ping_reply(uint16_t id, uint16_t seq);

/* ---- UDP (udp.c) ---- */
typedef void (*udp_handler)(struct netif *ifc, uint32_t src, uint16_t sport, const uint8_t *p,
			    uint32_t len);
int udp_bind(uint16_t port, udp_handler fn);
void udp_unbind(uint16_t port);
void udp_input(struct netif *ifc, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t len);
/* ifc NULL: routed. src 0: the interface's address (DHCP sends from 0.0.0.0 with ifc given). */
int udp_send(struct netif *ifc, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
	     const void *payload, uint32_t len);

/* ---- DHCP (dhcp.c) ---- */
#define DHCP_TRIES        6      /* DISCOVER/REQUEST attempts before giving up */
#define DHCP_FIRST_WAIT_MS 1000u /* doubled at each retry (RFC 2131 4.1 back-off) */
/* Starts (or restarts) the client on ifc; progress in ifc->dhcp.result. */
int dhcp_start(struct netif *ifc);
/* Keeps the lease of a DHCP ACK someone else received (the firmware's PXE stack): the address,
 * mask and router, renewed at T1 like our own. 0, or -E_CORRUPT when it is not a usable ACK. */
int dhcp_adopt(struct netif *ifc, const uint8_t *ack, uint32_t len);
void dhcp_tick(void);
/* Parses a BOOTREPLY (untrusted): 0 and the fields, or -E_CORRUPT. */
struct dhcp_msg { uint8_t type; uint32_t xid, yiaddr, server, mask, router, dns, lease_s; uint8_t chaddr[6]; };
int dhcp_parse(const uint8_t *p, uint32_t len, struct dhcp_msg *m);

/* ---- TCP (tcp.c) ---- */
#define TCP_CONNS          8
#define TCP_BUF       262144u    /* send and receive buffers per connection */
#define TCP_WSCALE          3    /* our window scale (RFC 7323): TCP_BUF >> 3 fits in 16 bits */
#define TCP_OOO_RANGES     64    /* out-of-order ranges (holes) kept per connection */
#define TCP_MSS_DEFAULT   536u
#define TCP_RTO_MIN_MS    200u
#define TCP_RTO_INIT_MS  1000u
#define TCP_RTO_MAX_MS  30000u
#define TCP_RETRIES         8    /* retransmissions of one segment before the connection fails */
#define TCP_SYN_RETRIES     5
#define TCP_KEEPIDLE_MS  30000u  /* an idle connection is probed after this */
#define TCP_KEEPINTVL_MS 10000u
#define TCP_KEEPCNT         5
#define TCP_TIME_WAIT_MS  2000u  /* short: this host opens few connections, ports are random */

enum tcp_state { TCP_CLOSED, TCP_SYN_SENT, TCP_ESTABLISHED, TCP_FIN_WAIT_1, TCP_FIN_WAIT_2,
		 TCP_CLOSING, TCP_TIME_WAIT, TCP_CLOSE_WAIT, TCP_LAST_ACK };
struct tcp_info {
	enum tcp_state state;
	uint32_t lip, rip;
	uint16_t lport, rport;
	uint32_t mss, snd_wnd, rcv_wnd, cwnd, rto_ms, srtt_ms;
	uint32_t unsent, unacked, unread;
	uint64_t rexmits, bytes_in, bytes_out;
	int error;
};
/* Opens a connection (returns its handle >= 0) or a negative code. Non-blocking: watch
 * tcp_state(); a failure ends in TCP_CLOSED with tcp_error() set. */
int tcp_connect(uint32_t dst, uint16_t port);
enum tcp_state tcp_state(int c);
int tcp_error(int c);                 /* -E_RESET, -E_TIMEOUT, -E_UNREACH or 0 */
/* Copies up to len bytes into the send buffer; returns how many (0 when it is full). */
int tcp_send(int c, const void *buf, uint32_t len);
uint32_t tcp_send_room(int c);
/* Reads up to len received bytes; 0 when none; -E_RESET etc. after a failure; at the peer's
 * FIN with nothing left: -E_GONE. */
int tcp_recv(int c, void *buf, uint32_t len);
uint32_t tcp_recv_avail(int c);
/* Sends FIN after the queued data; the handle stays valid until tcp_release. */
void tcp_close(int c);
/* Sends RST, frees the connection and its handle. */
void tcp_abort(int c);
/* Frees the handle of a closed (or closing: it finishes on its own) connection. */
void tcp_release(int c);
bool tcp_get_info(int c, struct tcp_info *out);
void tcp_input(struct netif *ifc, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t len);
void tcp_tick(void);
const char *tcp_state_name(enum tcp_state s);

#endif
