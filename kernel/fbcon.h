/* A text console on the UEFI framebuffer, mirroring the serial output. */
#ifndef KERNEL_FBCON_H
#define KERNEL_FBCON_H
#include <stddef.h>
void fbcon_init(void);
void fbcon_write(const char *s, size_t n);
int fbcon_active(void);
#endif
