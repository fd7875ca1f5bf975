/* COM1 (0x3F8) at 115200 8N1, polled in both directions: no interrupts to lose on a hung box. */
#include "serial.h"
#include "../kernel/io.h"

#define COM1 0x3F8
enum { RBR = 0, THR = 0, IER = 1, DLL = 0, DLM = 1, FCR = 2, LCR = 3, MCR = 4, LSR = 5 };
#define LSR_DR   0x01
#define LSR_THRE 0x20

void serial_init(void)
{
	outb(COM1 + IER, 0x00);
	outb(COM1 + LCR, 0x80);          /* divisor latch */
	outb(COM1 + DLL, 1);             /* 115200 = 115200 / 1 */
	outb(COM1 + DLM, 0);
	outb(COM1 + LCR, 0x03);          /* 8N1 */
	outb(COM1 + FCR, 0xC7);          /* FIFOs on and cleared */
	outb(COM1 + MCR, 0x03);          /* DTR, RTS */
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
