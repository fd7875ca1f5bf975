/* What the UEFI entry collects before ExitBootServices and hands to the kernel. After the hand-off
 * nothing of UEFI is used but the runtime services (reset, time). */
#ifndef BOOT_BOOTINFO_H
#define BOOT_BOOTINFO_H

#include <stdint.h>

struct boot_mem_range {
	uint64_t base;        /* physical */
	uint64_t pages;       /* 4 KiB pages */
	uint32_t efi_type;    /* EFI_MEMORY_TYPE */
	uint32_t usable;      /* 1: free for the kernel after ExitBootServices */
};

#define BOOT_MAX_RANGES 512

struct boot_info {
	struct boot_mem_range mem[BOOT_MAX_RANGES];
	uint32_t mem_count;

	uint64_t rsdp;                 /* ACPI RSDP (2.0 preferred), 0 when none */

	struct {                       /* GOP framebuffer; base 0 when none */
		uint64_t base;
		uint32_t width, height, pitch_pixels;
		uint32_t bgr;          /* 1 for BlueGreenRedReserved 8-bit, 0 for RGB */
	} fb;

	char load_options[1024];       /* the image's load options, ASCII, "" when none */
	char *cfg;                     /* cowboot.cfg beside the EFI binary, NUL-terminated, or NULL */
	uint32_t cfg_len;

	void *runtime_services;        /* EFI_RUNTIME_SERVICES * (virtual == physical) */
	char fw_vendor[64];
	uint32_t fw_revision;

	uint64_t image_base, image_size;
	uint64_t tsc_at_entry;         /* rdtsc at efi_main, for the boot-time benchmark */

	/* The boot device: PCI address of its controller and, for disks, the namespace/port/LUN
	 * from the device path, so the block layer can flag it "boot". pci_bus == 0xffff: unknown. */
	uint16_t boot_pci_seg, boot_pci_bus;
	uint8_t boot_pci_dev, boot_pci_fn;
	uint32_t boot_port;            /* SATA port, NVMe namespace id, or 0 */
	int netboot;                   /* loaded over PXE */
	/* A USB boot disk: the port of each tier below the controller (the firmware counts from 0)
	 * and the LUN; depth 0 when the boot device is not on USB. */
	uint8_t boot_usb_depth, boot_usb_lun, boot_usb_port[6];

	/* The firmware's own glyphs for ASCII 32..126, rendered through HII before the hand-off so
	 * the framebuffer console needs no font of its own. font_h == 0: none could be had. */
	uint8_t font_w, font_h;
	uint8_t font[95][24];          /* one byte a row, bit 7 = leftmost pixel */

	/* SMBIOS System Information (type 1), printable ASCII, "" when unknown. */
	char machine_vendor[64], machine_product[64], machine_serial[64];

	uint64_t tsc_khz;              /* TSC rate, measured against the firmware's Stall() */
	int wall_valid;                /* wall clock from GetTime at hand-off */
	uint16_t wall_year;
	uint8_t wall_month, wall_day, wall_hour, wall_minute, wall_second;

	/* Over PXE: the firmware's DHCP acknowledgement (the BOOTP packet's bytes) and the address
	 * it gave, so the network stack keeps that lease instead of asking again; 0: none. */
	uint16_t pxe_ack_len;
	uint8_t pxe_ack[1472];
	uint8_t pxe_ip[4], pxe_mask[4];
};

/* The hand-over: efi_main calls it after ExitBootServices (app/main.c). */
void kernel_main(struct boot_info *bi) __attribute__((noreturn));
/* The kernel's copy, valid from kernel_main on. */
const struct boot_info *boot_info_get(void);

#endif
