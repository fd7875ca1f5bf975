/* 16550 UART on COM1, polled. */
#ifndef DRIVERS_SERIAL_H
#define DRIVERS_SERIAL_H
void serial_init(void);
void serial_putc(char c);  /* waits (bounded) for the transmitter: only for the exception report */
/* Bytes the transmitter takes now without waiting: its FIFO depth when empty, else 0. */
int serial_tx_room(void);
void serial_tx(char c);    /* one byte into the FIFO, after serial_tx_room said there is room */
int serial_getc(void);   /* -1 when nothing is waiting */
#endif
