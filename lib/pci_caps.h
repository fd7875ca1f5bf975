/* The PCI capability list as pure code over a config-space reader, bounded against what a
 * broken or hostile device answers: loops, pointers into the header, past the 256 bytes. */
#ifndef KERNEL_LIB_PCI_CAPS_H
#define KERNEL_LIB_PCI_CAPS_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_CAPS_MAX 48   /* 4-byte-aligned places between 0x40 and 0xff: a longer chain loops */

/* Reads one byte of the function's configuration space (offsets below 256 only). */
typedef uint8_t (*pci_cfg_read8_fn)(void *ctx, uint16_t off);

/* The capabilities in chain order: their offsets (each 0x40..0xfc, 4-byte aligned, none twice),
 * stopping at the end of the chain or at the first pointer that breaks these rules.
 * Returns how many (0 when the status register has no capability list). */
int pci_caps_list(pci_cfg_read8_fn rd, void *ctx, uint8_t offs[PCI_CAPS_MAX]);

/* Offset of the first capability with this id after the one at `after` (0: from the start)
 * in that order; 0 when none. Repeated calls from the last answer end, whatever the chain. */
uint8_t pci_caps_find(pci_cfg_read8_fn rd, void *ctx, uint8_t cap_id, uint8_t after);

/* A structure of `need` bytes described by a vendor capability (virtio's BAR, offset, length)
 * fits both the capability's own length and the BAR. */
bool pci_cap_window_ok(uint64_t bar_size, uint32_t off, uint32_t len, uint64_t need);

#endif
