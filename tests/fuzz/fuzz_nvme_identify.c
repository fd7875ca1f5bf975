/* libFuzzer target: NVMe Identify Controller (input bytes 0-4095), Identify Namespace
 * (4096-8191), the active namespace list (8192-12287) and the SMART / Health log (12288-12799),
 * each copied into a buffer of exactly its size (missing bytes zero). What the parser accepts
 * must be something the driver can size its transfers by. */
#include <stdlib.h>
#include <string.h>
#include "../../lib/nvme_id.h"
#include "checks.h"

static uint8_t *part(const uint8_t *data, size_t size, size_t at, size_t len)
{
	uint8_t *p = calloc(1, len);
	if (size > at)
		memcpy(p, data + at, size - at < len ? size - at : len);
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *ctrl = part(data, size, 0, NVME_ID_SIZE);
	uint8_t *ns = part(data, size, NVME_ID_SIZE, NVME_ID_SIZE);
	uint8_t *list = part(data, size, 2 * NVME_ID_SIZE, NVME_ID_SIZE);
	uint8_t *health = part(data, size, 3 * NVME_ID_SIZE, NVME_HEALTH_SIZE);

	struct nvme_ctrl_id c;
	unsigned shift = 12 + (size ? data[0] % 8 : 0);
	nvme_ctrl_id_parse(ctrl, shift, 1u << 20, &c);
	assert_printable(c.serial, sizeof(c.serial));
	assert_printable(c.model, sizeof(c.model));
	assert_printable(c.firmware, sizeof(c.firmware));
	if (!c.max_bytes || c.max_bytes > (1u << 20) || c.err_entries < 1 || c.err_entries > 64 ||
	    c.shutdown_ms < NVME_SHUTDOWN_MIN_MS || c.shutdown_ms > NVME_SHUTDOWN_MAX_MS)
		abort();

	struct nvme_ns_id n;
	char why[96];
	int rc = nvme_ns_id_parse(ns, &n, why, sizeof(why));
	if (rc == 0) {
		if (n.lsize < NVME_SECTOR_MIN || n.lsize > NVME_SECTOR_MAX || (n.lsize & (n.lsize - 1)) ||
		    !n.nsze || n.ncap > n.nsze || n.nuse > n.ncap || n.nsze > UINT64_MAX / n.lsize ||
		    (n.wwn_len != 0 && n.wwn_len != 8 && n.wwn_len != 16))
			abort();
	} else if (rc < 0 && (!memchr(why, '\0', sizeof(why)) || !why[0])) {
		abort();   /* a refusal always says why */
	}

	uint32_t ids[64];
	int k = nvme_ns_list_parse(list, ids, 64);
	if (k < 0 || k > 64)
		abort();
	for (int i = 0; i < k; i++)
		if (!ids[i] || ids[i] == 0xffffffffu || (i && ids[i] <= ids[i - 1]))
			abort();

	struct nvme_health h;
	nvme_health_parse(health, &h);
	if (h.temperature_c != -1000 && (h.temperature_c < -273 || h.temperature_c > 65535 - 273))
		abort();
	free(ctrl);
	free(ns);
	free(list);
	free(health);
	return 0;
}
