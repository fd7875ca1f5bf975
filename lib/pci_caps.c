/* PCI capability walk (pure: in the image and in the host fuzzer). Each call walks the chain
 * from its start with a visited set, so a loop, a pointer back into the 64-byte header or one
 * past the config space ends the walk instead of the driver's caller looping on it. */
#include "pci_caps.h"
#include "port.h"

#define STATUS_REG 0x06
#define STATUS_CAP_LIST 0x10u
#define CAP_PTR_REG 0x34
#define FIRST_CAP 0x40u

int pci_caps_list(pci_cfg_read8_fn rd, void *ctx, uint8_t offs[PCI_CAPS_MAX])
{
	if (!(rd(ctx, STATUS_REG) & STATUS_CAP_LIST))
		return 0;
	uint64_t seen = 0;   /* bit (p - 0x40) / 4 */
	int n = 0;
	/* The two low bits of every pointer are reserved: masked, as the spec tells software. */
	uint8_t p = rd(ctx, CAP_PTR_REG) & 0xfc;
	while (p >= FIRST_CAP && n < PCI_CAPS_MAX) {
		uint64_t bit = 1ull << ((p - FIRST_CAP) / 4);
		if (seen & bit)
			break;   /* a loop */
		seen |= bit;
		offs[n++] = p;
		p = rd(ctx, (uint16_t)(p + 1)) & 0xfc;
	}
	return n;
}

uint8_t pci_caps_find(pci_cfg_read8_fn rd, void *ctx, uint8_t cap_id, uint8_t after)
{
	uint8_t offs[PCI_CAPS_MAX];
	int n = pci_caps_list(rd, ctx, offs), i = 0;
	if (after) {
		while (i < n && offs[i] != after)
			i++;
		i++;   /* past it; `after` not in the chain: nothing follows */
	}
	for (; i < n; i++)
		if (rd(ctx, offs[i]) == cap_id)
			return offs[i];
	return 0;
}

bool pci_cap_window_ok(uint64_t bar_size, uint32_t off, uint32_t len, uint64_t need)
{
	return need <= len && need <= bar_size && off <= bar_size - need;
}
