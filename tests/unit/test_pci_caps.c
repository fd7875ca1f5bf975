/* The PCI capability walk on config spaces QEMU's device models answer (tests/fuzz/seeds/pci_caps,
 * made by tests/fuzz/mkseeds.py) and on broken chains, which must end. */
#include "../../lib/pci_caps.h"
#include "../lib/check.h"
#include <stdlib.h>
#include <string.h>

static uint8_t cs[256];
static unsigned reads;

static uint8_t rd(void *ctx, uint16_t off)
{
	(void)ctx;
	reads++;
	return off < 256 ? cs[off] : 0xff;
}

static void load(const char *seed)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/fuzz/seeds/pci_caps/%s",
		 getenv("COWBOOT_ROOT") ? getenv("COWBOOT_ROOT") : ".", seed);
	memset(cs, 0xff, sizeof(cs));
	FILE *fp = fopen(path, "rb");
	if (fp) {
		if (fread(cs, 1, sizeof(cs), fp) != sizeof(cs))
			memset(cs, 0xff, sizeof(cs));
		fclose(fp);
	}
}

/* The virtio vendor capabilities (id 09h) in the order virtio_blk's repeated search finds them. */
static int vendor_walk(uint8_t *types, int max)
{
	int n = 0;
	for (uint8_t c = pci_caps_find(rd, NULL, 0x09, 0); c && n < max; c = pci_caps_find(rd, NULL, 0x09, c))
		types[n++] = cs[c + 3];
	return n;
}

int main(void)
{
	uint8_t offs[PCI_CAPS_MAX], types[64];
	load("virtio-blk");
	int n = pci_caps_list(rd, NULL, offs);
	CHECK("virtio-blk-pci: MSI-X then five vendor capabilities", n == 6 && cs[offs[0]] == 0x11 && offs[5] == 0x40);
	n = vendor_walk(types, 64);
	CHECK("the repeated search finds the five virtio structures in chain order",
	      n == 5 && types[0] == 5 && types[1] == 2 && types[2] == 4 && types[3] == 3 && types[4] == 1);
	load("pcie-root-port");
	CHECK("pcie-root-port: the PCI Express capability", pci_caps_find(rd, NULL, 0x10, 0) == 0x54);
	load("ahci");
	CHECK("ahci: the SATA capability, no vendor one", pci_caps_find(rd, NULL, 0x12, 0) != 0 &&
	      pci_caps_find(rd, NULL, 0x09, 0) == 0);

	load("loop-self");
	reads = 0;
	n = vendor_walk(types, 64);
	CHECK("the first capability pointing at itself ends the chain there, the search ends",
	      n == 0 && reads < 1000 && pci_caps_list(rd, NULL, offs) == 1);
	load("virtio-blk");
	cs[0x40 + 1] = 0x84;   /* the last one points back at the second: a loop of four */
	reads = 0;
	n = vendor_walk(types, 64);
	CHECK("a loop back into the chain: each found once, the search ends", n == 5 && reads < 5000);
	load("into-header");
	CHECK("a pointer into the 64-byte header ends the chain", pci_caps_list(rd, NULL, offs) == 1);
	load("virtio-blk");
	cs[0x34] = 0x9b;   /* reserved low bits set: masked to 0x98 */
	CHECK("the reserved low pointer bits are masked", pci_caps_list(rd, NULL, offs) == 6 && offs[0] == 0x98);
	cs[0x06] &= (uint8_t)~0x10;
	CHECK("no capability list bit: no capabilities", pci_caps_list(rd, NULL, offs) == 0 &&
	      pci_caps_find(rd, NULL, 0x11, 0) == 0);
	memset(cs, 0, sizeof(cs));
	cs[0x06] = 0x10;
	cs[0x34] = 0x40;
	for (unsigned p = 0x40; p < 0x100; p += 4)
		cs[p] = 0x09, cs[p + 1] = (uint8_t)(p + 4 < 0x100 ? p + 4 : 0x40);
	CHECK("48 capabilities filling the space, the last looping: all listed, none twice",
	      pci_caps_list(rd, NULL, offs) == PCI_CAPS_MAX && vendor_walk(types, 64) == PCI_CAPS_MAX);
	CHECK("a virtio window inside its BAR and length fits", pci_cap_window_ok(0x4000, 0x3000, 0x1000, 0x38));
	CHECK("a window running past the BAR does not", !pci_cap_window_ok(0x4000, 0x3fd0, 0x1000, 0x38));
	CHECK("a structure longer than the capability says does not", !pci_cap_window_ok(0x4000, 0, 0x10, 0x38));
	CHECK("an offset near 4 GiB does not wrap", !pci_cap_window_ok(0x4000, 0xfffffff0u, 0x1000, 0x38));
	return CHECK_DONE();
}
