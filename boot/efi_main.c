/* The UEFI entry: gathers what the kernel needs while boot services still exist (memory map,
 * ACPI, framebuffer, load options, cowboot.cfg, TSC rate, clock), leaves boot services, and
 * hands a boot_info to kernel_main. Nothing of UEFI but the runtime services is used after. */
#include <efi.h>
#include <efilib.h>
#include <stddef.h>
#include "bootinfo.h"
#include "../lib/smbios.h"


static struct boot_info info;

static uint64_t rdtsc_now(void)
{
	uint32_t lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static void ascii_copy(char *dst, size_t cap, const CHAR16 *src, size_t max_chars)
{
	size_t n = 0;
	for (size_t i = 0; src && i < max_chars && src[i] && n + 1 < cap; i++)
		dst[n++] = src[i] < 0x80 ? (char)src[i] : '?';
	dst[n] = '\0';
}

/* Boot managers often pass the image's own path as the first word: drop it. */
static void collect_load_options(EFI_LOADED_IMAGE *li)
{
	char *s = info.load_options;
	ascii_copy(s, sizeof(info.load_options), li->LoadOptions, li->LoadOptionsSize / 2);
	char *p = s;
	while (*p == ' ')
		p++;
	char *end = p;
	while (*end && *end != ' ')
		end++;
	size_t wlen = (size_t)(end - p);
	if (wlen > 4 && (end[-4] == '.') && (end[-3] | 32) == 'e' && (end[-2] | 32) == 'f' &&
	    (end[-1] | 32) == 'i')
		p = end;
	while (*p == ' ')
		p++;
	size_t i = 0;
	while (p[i]) {
		s[i] = p[i];
		i++;
	}
	s[i] = '\0';
}

/* cowboot.cfg lives beside the EFI binary: same directory on the same volume. */
static void collect_cfg(EFI_LOADED_IMAGE *li)
{
	EFI_FILE_HANDLE root = LibOpenRoot(li->DeviceHandle), f;
	if (!root)
		return;
	CHAR16 path[256];
	CHAR16 *img = DevicePathToStr(li->FilePath);
	UINTN n = 0, slash = 0;
	for (UINTN i = 0; img && img[i] && i < 200; i++) {
		path[n++] = img[i] == '/' ? '\\' : img[i];
		if (path[n - 1] == '\\')
			slash = n;
	}
	if (img)
		FreePool(img);
	const CHAR16 *name = L"cowboot.cfg";
	n = slash;
	for (UINTN i = 0; name[i]; i++)
		path[n++] = name[i];
	path[n] = 0;
	if (uefi_call_wrapper(root->Open, 5, root, &f, path, EFI_FILE_MODE_READ, 0) != EFI_SUCCESS)
		goto close_root;
	EFI_FILE_INFO *fi = LibFileInfo(f);
	if (!fi)
		goto close_file;
	UINTN size = fi->FileSize;
	FreePool(fi);
	if (size > 64 * 1024) {
		Print(L"cowboot: cowboot.cfg is larger than 64 KiB: ignored\n");
		goto close_file;
	}
	char *buf = AllocatePool(size + 1);
	if (!buf)
		goto close_file;
	if (uefi_call_wrapper(f->Read, 3, f, &size, buf) == EFI_SUCCESS) {
		buf[size] = '\0';
		info.cfg = buf;
		info.cfg_len = (uint32_t)size;
	} else {
		FreePool(buf);
	}
close_file:
	uefi_call_wrapper(f->Close, 1, f);
close_root:
	uefi_call_wrapper(root->Close, 1, root);
}

/* Over PXE there is no volume: fetch cowboot.cfg from the boot file's TFTP server and directory
 * through the firmware's PXE stack, which only exists while boot services do. */
static void collect_cfg_tftp(EFI_LOADED_IMAGE *li)
{
	EFI_PXE_BASE_CODE *pxe = NULL;
	if (uefi_call_wrapper(BS->HandleProtocol, 3, li->DeviceHandle, &PxeBaseCodeProtocol,
			      (void **)&pxe) != EFI_SUCCESS || !pxe || !pxe->Mode || !pxe->Mode->Started)
		return;
	EFI_PXE_BASE_CODE_MODE *m = pxe->Mode;
	/* A proxy DHCP offer, when there was one, names the boot server instead of the DHCP ack. */
	EFI_PXE_BASE_CODE_DHCPV4_PACKET *d = m->ProxyOfferReceived ? &m->ProxyOffer.Dhcpv4
								   : &m->DhcpAck.Dhcpv4;
	if (!m->ProxyOfferReceived && !m->DhcpAckReceived)
		return;
	EFI_IP_ADDRESS server;
	SetMem(&server, sizeof(server), 0);
	CopyMem(server.v4.Addr, d->BootpSiAddr, 4);
	UINT8 name[128 + 16];
	UINTN n = 0, slash = 0;
	for (UINTN i = 0; i < sizeof(d->BootpBootFile) && d->BootpBootFile[i]; i++) {
		name[n++] = d->BootpBootFile[i];
		if (name[n - 1] == '/' || name[n - 1] == '\\')
			slash = n;
	}
	const char *cfg = "cowboot.cfg";
	n = slash;
	for (UINTN i = 0; cfg[i]; i++)
		name[n++] = (UINT8)cfg[i];
	name[n] = 0;
	UINT64 size = 0;
	EFI_STATUS s = uefi_call_wrapper(pxe->Mtftp, 10, pxe, EFI_PXE_BASE_CODE_TFTP_GET_FILE_SIZE,
					 NULL, FALSE, &size, NULL, &server, name, NULL, FALSE);
	/* iPXE's PXE_BASE_CODE answers GET_FILE_SIZE with Unsupported: read into the limit. */
	if (s == EFI_UNSUPPORTED)
		size = 64 * 1024;
	else if (s == EFI_TFTP_ERROR || s == EFI_NOT_FOUND)
		return;   /* no cowboot.cfg on the server: the normal case */
	else if (s != EFI_SUCCESS) {
		Print(L"cowboot: TFTP size of cowboot.cfg failed: %r\n", s);
		return;
	}
	if (size > 64 * 1024) {
		Print(L"cowboot: TFTP cowboot.cfg is larger than 64 KiB: ignored\n");
		return;
	}
	char *buf = AllocatePool(size + 1);
	if (!buf) {
		Print(L"cowboot: no memory for TFTP cowboot.cfg\n");
		return;
	}
	s = uefi_call_wrapper(pxe->Mtftp, 10, pxe, EFI_PXE_BASE_CODE_TFTP_READ_FILE,
			      buf, FALSE, &size, NULL, &server, name, NULL, FALSE);
	if (s == EFI_BUFFER_TOO_SMALL)
		Print(L"cowboot: TFTP cowboot.cfg is larger than 64 KiB: ignored\n");
	else if (s != EFI_SUCCESS && s != EFI_TFTP_ERROR && s != EFI_NOT_FOUND)
		Print(L"cowboot: TFTP read of cowboot.cfg failed: %r\n", s);
	if (s != EFI_SUCCESS) {
		FreePool(buf);
		return;
	}
	buf[size] = '\0';
	info.cfg = buf;
	info.cfg_len = (uint32_t)size;
}

/* The lease the firmware's PXE stack got, while its mode data still exists. */
static void collect_pxe_lease(EFI_LOADED_IMAGE *li)
{
	EFI_PXE_BASE_CODE *pxe = NULL;
	if (uefi_call_wrapper(BS->HandleProtocol, 3, li->DeviceHandle, &PxeBaseCodeProtocol,
			      (void **)&pxe) != EFI_SUCCESS || !pxe || !pxe->Mode || !pxe->Mode->Started ||
	    !pxe->Mode->DhcpAckReceived || pxe->Mode->UsingIpv6)
		return;
	EFI_PXE_BASE_CODE_MODE *m = pxe->Mode;
	CopyMem(info.pxe_ack, m->DhcpAck.Raw, sizeof(info.pxe_ack));
	info.pxe_ack_len = sizeof(info.pxe_ack);
	CopyMem(info.pxe_ip, m->StationIp.v4.Addr, 4);
	CopyMem(info.pxe_mask, m->SubnetMask.v4.Addr, 4);
}

static void collect_boot_device(EFI_LOADED_IMAGE *li)
{
	EFI_DEVICE_PATH *dp = DevicePathFromHandle(li->DeviceHandle);
	info.boot_pci_bus = 0xffff;
	for (; dp && !IsDevicePathEnd(dp); dp = NextDevicePathNode(dp)) {
		if (DevicePathType(dp) == HARDWARE_DEVICE_PATH && DevicePathSubType(dp) == HW_PCI_DP) {
			PCI_DEVICE_PATH *p = (PCI_DEVICE_PATH *)dp;
			/* The last PCI node is the controller itself (earlier ones are bridges). */
			info.boot_pci_bus = 0;
			info.boot_pci_dev = p->Device;
			info.boot_pci_fn = p->Function;
		}
		if (DevicePathType(dp) == MESSAGING_DEVICE_PATH && DevicePathSubType(dp) == MSG_MAC_ADDR_DP)
			info.netboot = 1;
		if (DevicePathType(dp) == MESSAGING_DEVICE_PATH && DevicePathSubType(dp) == MSG_USB_DP &&
		    info.boot_usb_depth < sizeof(info.boot_usb_port))
			info.boot_usb_port[info.boot_usb_depth++] = ((USB_DEVICE_PATH *)dp)->Port;
		if (DevicePathType(dp) == MESSAGING_DEVICE_PATH && DevicePathSubType(dp) == 0x11)
			info.boot_usb_lun = *((UINT8 *)dp + 4);   /* Device Logical Unit: its LUN */
		/* Which disk behind the controller: the SATA port, or the NVMe namespace (UEFI 10.3.4.24:
		 * subtype 23, the namespace id first), so the driver can flag the boot disk itself. */
		if (DevicePathType(dp) == MESSAGING_DEVICE_PATH && DevicePathSubType(dp) == MSG_SATA_DP &&
		    (UINTN)DevicePathNodeLength(dp) >= sizeof(SATA_DEVICE_PATH))
			info.boot_port = ((SATA_DEVICE_PATH *)dp)->HBAPortNumber;
		if (DevicePathType(dp) == MESSAGING_DEVICE_PATH && DevicePathSubType(dp) == 23 &&
		    DevicePathNodeLength(dp) >= 8)
			CopyMem(&info.boot_port, (UINT8 *)dp + 4, 4);
	}
}

/* Who made the machine and its serial, from SMBIOS (the 3.0 entry point, else 2.x), for the
 * reports' names. The tables may sit in memory the kernel reuses: read them now. */
static void collect_smbios(void)
{
	void *ep = NULL;
	uint64_t addr;
	uint32_t len;
	struct smbios_system sys;
	if (!(LibGetSystemConfigurationTable(&SMBIOS3TableGuid, &ep) == EFI_SUCCESS && ep &&
	      smbios_entry(ep, 24, &addr, &len) == 0) &&
	    !(LibGetSystemConfigurationTable(&SMBIOSTableGuid, &ep) == EFI_SUCCESS && ep &&
	      smbios_entry(ep, 31, &addr, &len) == 0))
		return;
	if (smbios_system((const uint8_t *)(uintptr_t)addr, len, &sys) != 0)
		return;
	CopyMem(info.machine_vendor, sys.manufacturer, sizeof(info.machine_vendor));
	CopyMem(info.machine_product, sys.product, sizeof(info.machine_product));
	CopyMem(info.machine_serial, sys.serial, sizeof(info.machine_serial));
}

/* A `screen <W>x<H>` line in cowboot.cfg asks for that GOP mode: it can only be set while boot
 * services run, so the loader looks for it here (the shell's `screen` command then checks it). */
static void pick_mode(EFI_GRAPHICS_OUTPUT_PROTOCOL *gop)
{
	const char *p = info.cfg;
	while (p && *p) {
		if (!strncmpa((const CHAR8 *)p, (const CHAR8 *)"screen ", 7))
			break;
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	if (!p || !*p)
		return;
	UINT32 w = 0, h = 0;
	for (p += 7; *p >= '0' && *p <= '9'; p++)
		w = w * 10 + (UINT32)(*p - '0');
	if (*p++ != 'x')
		return;
	for (; *p >= '0' && *p <= '9'; p++)
		h = h * 10 + (UINT32)(*p - '0');
	for (UINT32 m = 0; m < gop->Mode->MaxMode; m++) {
		EFI_GRAPHICS_OUTPUT_MODE_INFORMATION *mi;
		UINTN size;
		if (uefi_call_wrapper(gop->QueryMode, 4, gop, m, &size, &mi) != EFI_SUCCESS)
			continue;
		int match = mi->HorizontalResolution == w && mi->VerticalResolution == h;
		FreePool(mi);
		if (match) {
			uefi_call_wrapper(gop->SetMode, 2, gop, m);
			return;
		}
	}
	Print(L"cowboot: the firmware offers no %ux%u screen mode\n", w, h);
}

static void collect_framebuffer(void)
{
	EFI_GUID gop_guid = EFI_GRAPHICS_OUTPUT_PROTOCOL_GUID;
	EFI_GRAPHICS_OUTPUT_PROTOCOL *gop;
	if (LibLocateProtocol(&gop_guid, (void **)&gop) != EFI_SUCCESS || !gop || !gop->Mode)
		return;
	pick_mode(gop);
	EFI_GRAPHICS_OUTPUT_MODE_INFORMATION *mi = gop->Mode->Info;
	if (mi->PixelFormat != PixelBlueGreenRedReserved8BitPerColor &&
	    mi->PixelFormat != PixelRedGreenBlueReserved8BitPerColor)
		return;
	info.fb.base = gop->Mode->FrameBufferBase;
	info.fb.width = mi->HorizontalResolution;
	info.fb.height = mi->VerticalResolution;
	info.fb.pitch_pixels = mi->PixelsPerScanLine;
	info.fb.bgr = mi->PixelFormat == PixelBlueGreenRedReserved8BitPerColor;
}

/* The HII font protocol (UEFI 2.x, 34.1); gnu-efi has no declaration of it. */
struct image_output {
	UINT16 width, height;
	EFI_GRAPHICS_OUTPUT_BLT_PIXEL *bitmap;
};
struct hii_font {
	void *string_to_image, *string_id_to_image;
	EFI_STATUS (EFIAPI *get_glyph)(struct hii_font *self, CHAR16 ch, const void *info,
				       struct image_output **blt, UINTN *baseline);
	void *get_font_info;
};

static void collect_font(void)
{
	EFI_GUID guid = { 0xe9ca4775, 0x8657, 0x47fc, { 0x97, 0xe7, 0x7e, 0xd6, 0x5a, 0x08, 0x43, 0x24 } };
	struct hii_font *hf;
	if (!info.fb.base || LibLocateProtocol(&guid, (void **)&hf) != EFI_SUCCESS || !hf)
		return;
	for (int c = 32; c < 127; c++) {
		struct image_output *img = NULL;
		if (hf->get_glyph(hf, (CHAR16)c, NULL, &img, NULL) != EFI_SUCCESS || !img) {
			info.font_h = 0;
			return;
		}
		if (img->width > 8 || img->height > 24 || !img->width) {
			FreePool(img->bitmap);
			FreePool(img);
			info.font_h = 0;
			return;
		}
		info.font_w = (uint8_t)img->width;
		info.font_h = (uint8_t)img->height;
		for (int y = 0; y < img->height; y++) {
			uint8_t row = 0;
			for (int x = 0; x < img->width; x++) {
				EFI_GRAPHICS_OUTPUT_BLT_PIXEL px = img->bitmap[y * img->width + x];
				if (px.Red + px.Green + px.Blue > 3 * 0x60)
					row |= (uint8_t)(0x80 >> x);
			}
			info.font[c - 32][y] = row;
		}
		FreePool(img->bitmap);
		FreePool(img);
	}
}

static void collect_clock(void)
{
	uint64_t t0 = rdtsc_now();
	uefi_call_wrapper(BS->Stall, 1, 20000);
	info.tsc_khz = (rdtsc_now() - t0) / 20;
	EFI_TIME t;
	if (uefi_call_wrapper(RT->GetTime, 2, &t, NULL) == EFI_SUCCESS) {
		info.wall_valid = 1;
		info.wall_year = t.Year;
		info.wall_month = t.Month;
		info.wall_day = t.Day;
		info.wall_hour = t.Hour;
		info.wall_minute = t.Minute;
		info.wall_second = t.Second;
	}
}

static int usable_after_exit(UINT32 type)
{
	/* Boot-services memory is left alone: the stack we run on lives there. */
	return type == EfiConventionalMemory;
}

/* Reads the map and exits boot services; a changed map key means the map moved: read again. */
static EFI_STATUS leave_boot_services(EFI_HANDLE image)
{
	static UINT8 map[96 * 1024];
	for (int attempt = 0; attempt < 8; attempt++) {
		UINTN size = sizeof(map), key, dsize;
		UINT32 dver;
		EFI_STATUS st = uefi_call_wrapper(BS->GetMemoryMap, 5, &size,
						  (EFI_MEMORY_DESCRIPTOR *)map, &key, &dsize, &dver);
		if (st != EFI_SUCCESS)
			return st;
		info.mem_count = 0;
		for (UINTN off = 0; off + dsize <= size && info.mem_count < BOOT_MAX_RANGES; off += dsize) {
			EFI_MEMORY_DESCRIPTOR *d = (EFI_MEMORY_DESCRIPTOR *)(map + off);
			struct boot_mem_range *r = &info.mem[info.mem_count++];
			r->base = d->PhysicalStart;
			r->pages = d->NumberOfPages;
			r->efi_type = d->Type;
			r->usable = usable_after_exit(d->Type);
		}
		st = uefi_call_wrapper(BS->ExitBootServices, 2, image, key);
		if (st == EFI_SUCCESS)
			return st;
	}
	return EFI_ABORTED;
}

/* gnu-efi's crt0 converts the firmware's MS-ABI call and calls us with the SysV ABI. */
EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
	info.tsc_at_entry = rdtsc_now();
	InitializeLib(image, st);

	EFI_LOADED_IMAGE *li = NULL;
	uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol, (void **)&li);
	if (li) {
		info.image_base = (uint64_t)(uintptr_t)li->ImageBase;
		info.image_size = li->ImageSize;
		collect_load_options(li);
		collect_cfg(li);
		collect_boot_device(li);
		if (info.netboot && !info.cfg)
			collect_cfg_tftp(li);
		if (info.netboot)
			collect_pxe_lease(li);
	}
	void *rsdp = NULL;
	EFI_GUID acpi20 = ACPI_20_TABLE_GUID;
	if (LibGetSystemConfigurationTable(&acpi20, &rsdp) != EFI_SUCCESS)
		LibGetSystemConfigurationTable(&AcpiTableGuid, &rsdp);
	info.rsdp = (uint64_t)(uintptr_t)rsdp;
	collect_smbios();
	collect_framebuffer();
	collect_font();
	collect_clock();
	info.runtime_services = st->RuntimeServices;
	ascii_copy(info.fw_vendor, sizeof(info.fw_vendor), st->FirmwareVendor, 63);
	info.fw_revision = st->FirmwareRevision;

	EFI_STATUS s = leave_boot_services(image);
	if (s != EFI_SUCCESS) {
		Print(L"cowboot: ExitBootServices failed: %r\n", s);
		return s;
	}
	kernel_main(&info);
}
