/* libFuzzer target: the USB descriptor and SCSI reply parsers (lib/usbdesc.c) take bytes a
 * device wrote; none may crash, read out of bounds or report more than it was given. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../lib/usbdesc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Copy into an exact-size heap buffer so ASan sees any read past the end. */
	uint8_t *b = malloc(size ? size : 1);
	if (!b)
		return 0;
	for (size_t i = 0; i < size; i++)
		b[i] = data[i];
	struct usbd_device dd;
	struct usbd_config cfg;
	struct usbd_hub hub;
	struct scsi_inquiry inq;
	struct scsi_sense sense;
	char s[64];
	uint64_t sectors;
	uint32_t ls, ps;
	usbd_parse_device(b, size, &dd);
	if (usbd_parse_config(b, size, &cfg) == 0) {
		if (cfg.niface > USBD_MAX_IFACES)
			abort();
		for (int i = 0; i < cfg.niface; i++)
			if (cfg.iface[i].neps > USBD_MAX_EPS)
				abort();
	}
	usbd_config_total(b, size);
	usbd_string_ascii(b, size, s, sizeof(s));
	usbd_string_ascii(b, size, s, 1);
	usbd_parse_hub(b, size, &hub);
	scsi_parse_inquiry(b, size, &inq);
	if (scsi_parse_capacity10(b, size, &sectors, &ls) == 0 && (ls < 512 || ls > 65536))
		abort();
	if (scsi_parse_capacity16(b, size, &sectors, &ls, &ps) == 0 && (ps < ls || ps > 65536))
		abort();
	scsi_parse_sense(b, size, &sense);
	char model[41], ser[21], fw[9];
	if (ata_identify_strings(b, size, model, ser, fw) == 0 && (strlen(model) > 40 || strlen(ser) > 20 || strlen(fw) > 8))
		abort();
	free(b);
	return 0;
}
