/* The boot-script variables that name a disk's identity, ${serial:<disk>} and ${model:<disk>},
 * so that one cowboot.cfg served to a room of machines names each machine's own export or report. */
#include "../kernel/console.h"
#include "../kernel/script_vars.h"
#include "../drivers/blk.h"
#include "../lib/errors.h"
#include "../lib/port.h"

/* A disk's identity string as one word: trailing blanks (ATA pads them) cut, blanks, quotes and
 * slashes inside made '_'. */
static void word(char *out, size_t n, const char *s)
{
	size_t len = strlen(s);
	while (len && s[len - 1] == ' ')
		len--;
	size_t i = 0;
	for (; i < len && i + 1 < n; i++) {
		char c = s[i];
		out[i] = c == ' ' || c == '\t' || c == '"' || c == '/' || c < 0x20 ? '_' : c;
	}
	out[i] = '\0';
}

static int identity(const char *disk, bool serial, char *out, size_t n)
{
	struct blk_dev *d = blk_find(disk);
	if (!d)
		return -E_NOENT;   /* "script failed at line N: ...: not found" says it */
	word(out, n, serial ? d->serial : d->model);
	if (!out[0]) {
		kprintf("script: %s has no %s\n", d->name, serial ? "serial" : "model");
		return -E_NOENT;
	}
	return 0;
}

static int serial_value(const char *disk, char *out, size_t n)
{
	return identity(disk, true, out, n);
}

static int model_value(const char *disk, char *out, size_t n)
{
	return identity(disk, false, out, n);
}

SCRIPT_VAR(serial, "serial", "disk", serial_value);
SCRIPT_VAR(model, "model", "disk", model_value);
