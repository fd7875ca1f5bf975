/* Variables in boot-script lines, so that one cowboot.cfg served to a room of machines names
 * each machine's own things: the expander over the SCRIPT_VAR table, and the variables the core
 * knows, ${mac}, ${ip}, ${date} (the disks' ${serial:<disk>}, ${model:<disk>} are app/disk_vars.c). */
#include "console.h"
#include "netif.h"
#include "script_vars.h"
#include "time.h"
#include "../net/net.h"
#include "../lib/errors.h"
#include "../lib/port.h"

#define SCRIPT_WAIT_ADDR_MS 20000u   /* ${ip} waits this long for DHCP */

static int mac_ip_value(const char *name, char *out, size_t n)
{
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

static int mac_value(const char *arg, char *out, size_t n)
{
	(void)arg;
	return mac_ip_value("mac", out, n);
}

static int ip_value(const char *arg, char *out, size_t n)
{
	(void)arg;
	return mac_ip_value("ip", out, n);
}

static int date_value(const char *arg, char *out, size_t n)
{
	(void)arg;
	struct wall_time t;
	time_wall(&t);
	fmt_snprintf(out, n, "%04d-%02d-%02d", t.year, t.month, t.day);
	return 0;
}

SCRIPT_VAR(mac, "mac", NULL, mac_value);
SCRIPT_VAR(ip, "ip", NULL, ip_value);
SCRIPT_VAR(date, "date", NULL, date_value);

/* ${name} or ${name:arg}, from the table. */
static int value_of(const char *name, char *out, size_t n)
{
	const char *colon = strchr(name, ':');
	size_t len = colon ? (size_t)(colon - name) : strlen(name);
	for_each_table_entry(v, svar, const struct script_var)
		if (strlen(v->name) == len && !strncmp(v->name, name, len) && !v->arg == !colon)
			return v->value(colon ? colon + 1 : NULL, out, n);
	char known[160];   /* the table's names, one line with the refusal */
	size_t k = 0;
	known[0] = '\0';
	for_each_table_entry(v, svar, const struct script_var)
		if (k < sizeof(known))
			k += (size_t)fmt_snprintf(known + k, sizeof(known) - k, "%s%s%s%s%s", k ? ", " : "", v->name,
						  v->arg ? ":<" : "", v->arg ? v->arg : "", v->arg ? ">" : "");
	kprintf("script: unknown variable ${%s} (%s)\n", name, known);
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
