/* NVMe Identify Controller / Namespace, the active namespace list and the SMART / Health log
 * as pure code: what the NVMe driver believes of a controller, each field checked first. */
#ifndef DRIVERS_LIB_NVME_ID_H
#define DRIVERS_LIB_NVME_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NVME_ID_SIZE 4096u
#define NVME_HEALTH_SIZE 512u
#define NVME_SECTOR_MIN 512u
#define NVME_SECTOR_MAX 65536u
#define NVME_SHUTDOWN_MIN_MS 5000u
#define NVME_SHUTDOWN_MAX_MS 60000u

struct nvme_ctrl_id {
	char serial[21], model[41], firmware[9];   /* trimmed, printable ASCII only */
	uint32_t max_bytes;          /* largest transfer: MDTS against the page size, at most `limit` */
	bool vwc;                    /* volatile write cache */
	unsigned err_entries;        /* Error Information log entries (ELPE + 1), at most 64 */
	uint32_t shutdown_ms;        /* RTD3E, kept within 5..60 s */
	uint32_t nn;                 /* number of namespaces */
};

/* `page_shift`: the controller's memory page size (12 for 4 KiB, CAP.MPSMIN + 12);
 * `limit`: the driver's own transfer limit. */
void nvme_ctrl_id_parse(const uint8_t id[NVME_ID_SIZE], unsigned page_shift, uint32_t limit,
			struct nvme_ctrl_id *c);

struct nvme_ns_id {
	uint64_t nsze, ncap, nuse;   /* sectors; ncap and nuse clamped to nsze */
	uint32_t lsize;              /* bytes, a power of two in 512..64 KiB */
	unsigned format;             /* the LBA format in use */
	uint8_t wwn[16], wwn_len;    /* NGUID (16) or EUI-64 (8), 0 when neither */
};

/* Returns 0; 1 for an inactive namespace (NSZE 0); or -E_UNSUPP / -E_CORRUPT with the reason in
 * `why` ("FLBAS selects LBA format 5 of 2") for a namespace the driver must not use. */
int nvme_ns_id_parse(const uint8_t id[NVME_ID_SIZE], struct nvme_ns_id *ns, char *why, size_t whylen);

/* The active namespace list (CNS 02h): ids ascending, stopping at the first 0 or one out of
 * order. Returns how many went into ids (at most max). */
int nvme_ns_list_parse(const uint8_t list[NVME_ID_SIZE], uint32_t *ids, int max);

struct nvme_health {
	uint8_t warnings, spare, spare_threshold, used;
	int temperature_c;           /* -1000: not reported */
	uint64_t power_on_hours, media_errors, unsafe_shutdowns;   /* 128-bit counters, saturated */
};
void nvme_health_parse(const uint8_t log[NVME_HEALTH_SIZE], struct nvme_health *h);

#endif
