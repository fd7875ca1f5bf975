/* libFuzzer target: the PCI capability walk over a 256-byte configuration space from the input
 * (shorter inputs read as 0xff beyond their end, as an absent device does). Every id is looked
 * for in turn, as drivers do, and each search must end within the chain's bound. Bytes past
 * 256 test the vendor-capability window check against exact arithmetic. */
#include <stdlib.h>
#include <string.h>
#include "../../lib/pci_caps.h"

struct space { const uint8_t *p; size_t n; unsigned reads; };

static uint8_t rd(void *ctx, uint16_t off)
{
	struct space *s = ctx;
	if (off >= 256)
		abort();   /* the walker must never leave the 256-byte space */
	s->reads++;
	return off < s->n ? s->p[off] : 0xff;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct space s = { data, size > 256 ? 256 : size, 0 };
	uint8_t offs[PCI_CAPS_MAX];
	int n = pci_caps_list(rd, &s, offs);
	if (n < 0 || n > PCI_CAPS_MAX)
		abort();
	for (int i = 0; i < n; i++) {
		if (offs[i] < 0x40 || offs[i] & 3)
			abort();
		for (int j = 0; j < i; j++)
			if (offs[i] == offs[j])
				abort();
	}
	/* Every capability id the chain holds, found one after another as virtio's walk does. */
	for (int i = 0; i < n; i++) {
		uint8_t id = rd(&s, offs[i]);
		int found = 0;
		for (uint8_t c = pci_caps_find(rd, &s, id, 0); c; c = pci_caps_find(rd, &s, id, c))
			if (++found > PCI_CAPS_MAX)
				abort();   /* the repeated search went round a loop */
		if (!found)
			abort();
	}
	/* Bytes past the config space: a virtio-style window (BAR size, offset, length, need). */
	if (size >= 256 + 24) {
		uint64_t bar, need;
		uint32_t off, len;
		memcpy(&bar, data + 256, 8);
		memcpy(&off, data + 264, 4);
		memcpy(&len, data + 268, 4);
		memcpy(&need, data + 272, 8);
		need &= 0x1ffffffffull;
		bool ok = pci_cap_window_ok(bar, off, len, need);
		unsigned __int128 end = (unsigned __int128)off + need;
		if (ok != (need <= len && end <= bar))
			abort();
	}
	return 0;
}
