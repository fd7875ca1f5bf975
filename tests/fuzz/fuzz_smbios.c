/* libFuzzer target: the SMBIOS entry point and structure table parsers on arbitrary bytes must
 * never read out of bounds or loop (seeds: tables laid out as QEMU 7.2 builds them). */
#include <stddef.h>
#include <stdint.h>
#include "../../lib/smbios.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t addr;
	uint32_t len;
	struct smbios_system s;
	smbios_entry(data, size, &addr, &len);
	smbios_system(data, size, &s);
	if (size > 31)
		smbios_system(data + 31, size - 31, &s);
	if (size > 24)
		smbios_system(data + 24, size - 24, &s);
	return 0;
}
