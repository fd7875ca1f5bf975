/* 16550 UART on COM1, polled. */
#ifndef DRIVERS_SERIAL_H
#define DRIVERS_SERIAL_H
void serial_init(void);
void serial_putc(char c);
int serial_getc(void);   /* -1 when nothing is waiting */
#endif
