/* Our own GDT and IDT, and the CPU exception report (kernel/interrupts.c, kernel/cpu.asm). */
#ifndef KERNEL_INTERRUPTS_H
#define KERNEL_INTERRUPTS_H

/* Loads the GDT and an IDT whose 32 exception vectors print a report and halt. */
void interrupts_init(void);

#endif
