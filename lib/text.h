/* Fixed-width text fields as drives and bridges report them (ATA, NVMe, SCSI identities). */
#ifndef LIB_TEXT_H
#define LIB_TEXT_H

#include <stdint.h>

/* The n bytes at in as a C string at out (n + 1 bytes): printable ASCII kept, NUL as a space,
 * any other byte as `other` (nothing a console would act on), the padding trimmed at both
 * ends. */
void text_field(char *out, const uint8_t *in, unsigned n, char other);
/* The same for an ATA string: two characters a 16-bit word, high byte first (at most 40 words). */
void text_field_ata(char *out, const uint8_t *words, unsigned nwords, char other);

#endif
