/* Variables in boot-script lines, so that one cowboot.cfg served to a room of machines names
 * each machine's own things: ${serial:<disk>}, ${model:<disk>}, ${mac}, ${ip}, ${date}. */
#include "console.h"
#include "net_cmds.h"
#include "script_vars.h"
#include "time.h"
#include "../net/net.h"
#include "../lib/errors.h"
#include "../lib/port.h"
#include "../drivers/blk.h"

#define SCRIPT_WAIT_ADDR_MS 20000u   /* ${ip} waits this long for DHCP */

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

static int value_of(const char *name, char *out, size_t n)
{
	if (!strncmp(name, "serial:", 7) || !strncmp(name, "model:", 6)) {
		bool serial = name[0] == 's';
		struct blk_dev *d = blk_find(name + (serial ? 7 : 6));
		if (!d)
			return -E_NOENT;
		word(out, n, serial ? d->serial : d->model);
		if (!out[0]) {
			kprintf("script: %s has no %s\n", d->name, serial ? "serial" : "model");
			return -E_NOENT;
		}
		return 0;
	}
	if (!strcmp(name, "mac") || !strcmp(name, "ip")) {
		if (name[0] == 'i')
			net_wait_configured(SCRIPT_WAIT_ADDR_MS);   /* DHCP may still be on its way */
		struct netif *ifc = net_get(0);
		if (!ifc || (name[0] == 'i' && !ifc->ip)) {
			kprintf("script: ${%s}: %s\n", name, ifc ? "eth0 has no address yet" : "no network interface");
			return -E_NOENT;
		}
		if (name[0] == 'i')
			ip_format(out, ifc->ip);
		else
			fmt_snprintf(out, n, "%02x:%02x:%02x:%02x:%02x:%02x", ifc->mac[0], ifc->mac[1],
				     ifc->mac[2], ifc->mac[3], ifc->mac[4], ifc->mac[5]);
		return 0;
	}
	if (!strcmp(name, "date")) {
		struct wall_time t;
		time_wall(&t);
		fmt_snprintf(out, n, "%04d-%02d-%02d", t.year, t.month, t.day);
		return 0;
	}
	kprintf("script: unknown variable ${%s} (serial:<disk>, model:<disk>, mac, ip, date)\n", name);
	return -E_NOENT;
}

int script_expand(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	for (const char *p = in; *p; ) {
		if (p[0] == '$' && p[1] == '{') {
			const char *end = strchr(p + 2, '}');
			char name[64], val[64];
			if (!end || (size_t)(end - p - 2) >= sizeof(name)) {
				kprintf("script: unterminated ${...}\n");
				return -E_SYNTAX;
			}
			memcpy(name, p + 2, (size_t)(end - p - 2));
			name[end - p - 2] = '\0';
			int rc = value_of(name, val, sizeof(val));
			if (rc < 0)
				return rc;
			size_t vl = strlen(val);
			if (o + vl >= outlen)
				return -E_RANGE;
			memcpy(out + o, val, vl);
			o += vl;
			p = end + 1;
			continue;
		}
		if (o + 1 >= outlen)
			return -E_RANGE;
		out[o++] = *p++;
	}
	out[o] = '\0';
	return 0;
}
