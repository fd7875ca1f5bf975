/* COM1 (0x3F8) at 115200 8N1, polled in both directions: no interrupts to lose on a hung box. */
#include "serial.h"
#include "../kernel/io.h"

#define COM1 0x3F8
enum { RBR = 0, THR = 0, IER = 1, DLL = 0, DLM = 1, FCR = 2, IIR = 2, LCR = 3, MCR = 4, LSR = 5 };
#define LSR_DR   0x01
#define LSR_THRE 0x20

static int fifo_depth = 1;

void serial_init(void)
{
	outb(COM1 + IER, 0x00);
	outb(COM1 + LCR, 0x80);          /* divisor latch */
	outb(COM1 + DLL, 1);             /* 115200 = 115200 / 1 */
	outb(COM1 + DLM, 0);
	outb(COM1 + LCR, 0x03);          /* 8N1 */
	outb(COM1 + FCR, 0xC7);          /* FIFOs on and cleared */
	outb(COM1 + MCR, 0x03);          /* DTR, RTS */
	/* A 16550A reports its FIFO in IIR bits 7:6; an 8250 or 16450 holds one byte at a time. */
	fifo_depth = (inb(COM1 + IIR) & 0xC0) == 0xC0 ? 16 : 1;
}

int serial_tx_room(void)
{
	return inb(COM1 + LSR) & LSR_THRE ? fifo_depth : 0;
}

void serial_tx(char c)
{
	outb(COM1 + THR, (uint8_t)c);
}

void serial_putc(char c)
{
	/* Bounded wait: a missing UART must not hang the appliance. */
	for (int i = 0; i < 100000 && !(inb(COM1 + LSR) & LSR_THRE); i++)
		cpu_pause();
	outb(COM1 + THR, (uint8_t)c);
}

int serial_getc(void)
{
	if (!(inb(COM1 + LSR) & LSR_DR))
		return -1;
	return inb(COM1 + RBR);
}
