/* NBD exports as block-layer disks (drivers/nbd.c): what the `net` command (app/net_cmds.c) calls. */
#ifndef DRIVERS_NBD_H
#define DRIVERS_NBD_H

/* net nbd <host>[:<port>] <export>: connects, and registers the export as the next nbd<N>. */
int nbd_attach_cmd(int argc, char **argv);
/* One line per NBD disk: link state, flags, counters, replay log. */
void nbd_print_all(void);

#endif
