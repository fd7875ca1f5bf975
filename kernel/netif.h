/* The network stack's glue in the appliance (kernel/netif.c): what the NIC drivers, the NBD
 * disks (drivers/nbd.c) and the network commands (app/net_cmds.c) share. */
#ifndef KERNEL_NETIF_H
#define KERNEL_NETIF_H

#include <stdint.h>

/* Starts the stack once (environment, syslog sink, PXE lease, DHCP on every interface); the
 * `net` poller calls it when the first interface exists, `net dhcp` may call it sooner. */
void netif_start(void);
/* Waits until an interface has an address (DHCP may still be running): 0 or -E_UNREACH. */
int net_wait_configured(uint32_t timeout_ms);
/* "a.b.c.d[:port]"; *port is left alone when none is given. */
int net_parse_host(const char *s, uint32_t *ip, uint16_t *port);

#endif
