/* What the network commands share with the NBD disks (drivers/nbd.c). */
#ifndef KERNEL_NET_CMDS_H
#define KERNEL_NET_CMDS_H

#include <stdint.h>

/* Waits until an interface has an address (DHCP may still be running): 0 or -E_UNREACH. */
int net_wait_configured(uint32_t timeout_ms);
/* "a.b.c.d[:port]"; *port is left alone when none is given. */
int net_parse_host(const char *s, uint32_t *ip, uint16_t *port);

/* drivers/nbd.c */
int nbd_attach_cmd(int argc, char **argv);
void nbd_print_all(void);

#endif
