/* ATA IDENTIFY DEVICE and SMART READ DATA pages as pure code: what the AHCI driver believes of a
 * drive, each field checked (validity bits, checksums, sane sector sizes) before use. */
#ifndef DRIVERS_LIB_ATA_ID_H
#define DRIVERS_LIB_ATA_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ATA_SECTOR_MIN 512u
#define ATA_SECTOR_MAX 65536u
#define ATA_SMART_ATTRS 30

struct ata_identity {
	char model[41], serial[21], firmware[9];   /* trimmed, printable ASCII only */
	uint64_t sectors;            /* LBA48 capacity (LBA28 when the drive leaves it 0) */
	uint32_t lsize, psize;       /* logical and physical sector sizes in bytes */
	bool fua, volatile_cache, cache_on, smart;
	unsigned ncq_depth;          /* 0: no NCQ */
};

/* Parses the 512-byte IDENTIFY page. Returns 0, or -E_UNSUPP / -E_CRC / -E_CORRUPT with a
 * reason in `why` ("logical sector size of 0 bytes") for a drive the driver must not use. */
int ata_identify_parse(const uint8_t page[512], struct ata_identity *id, char *why, size_t whylen);

struct ata_smart_attr { uint8_t id, current, worst; uint16_t flags; uint64_t raw; };
struct ata_smart {
	unsigned n;                  /* attributes in use (id != 0), in table order */
	struct ata_smart_attr attr[ATA_SMART_ATTRS];
};

/* Parses the 512-byte SMART READ DATA page: -E_CRC when its checksum byte is wrong. */
int ata_smart_parse(const uint8_t page[512], struct ata_smart *s);
/* Raw value (48 bits) of the first attribute with this id, or -1 when the drive lacks it. */
int64_t ata_smart_raw(const struct ata_smart *s, uint8_t id);
/* The attributes a rescue cares about, those the drive has, as one line: "SMART data:
 * temperature 36 C, power-on hours 1234, reallocated 0, pending 0, offline uncorrectable 0",
 * or "SMART data: no known attributes". The one wording of every transport (AHCI, SAT). */
void ata_smart_summary(const struct ata_smart *s, char *line, size_t n);
/* SMART in words for a person: the verdict and the sectors the drive gave up on or may
 * ("SMART: passed, but 8 reallocated, 3 pending sectors"). failing: 1 the drive says a threshold
 * is exceeded, 0 it says not, a negative code when it gave no verdict; s NULL when the
 * attributes could not be read. Returns 0 passed, 1 warning, 2 failing, 3 unknown: the order
 * of the block layer's verdicts. */
int ata_smart_words(const struct ata_smart *s, int failing, char *words, size_t n);
/* SMART RETURN STATUS: the LBA mid/high registers of the answer. 0 healthy, 1 threshold
 * exceeded, -E_IO when they are neither. */
int ata_smart_status(uint8_t lba_mid, uint8_t lba_high);

#endif
