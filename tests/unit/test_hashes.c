/* SHA-256 and CRC-32C against published check values and the host's sha256sum. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../../lib/crc32c.h"
#include "../../lib/sha256.h"
#include "../../lib/crc32.h"

static void hex(const uint8_t *d, char *out)
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

int main(void)
{
	struct sha256 s;
	uint8_t d[32];
	char h[65];
	sha256_init(&s);
	sha256_final(&s, d);
	hex(d, h);
	CHECK("sha256 of nothing", !strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	sha256_init(&s);
	sha256_update(&s, "abc", 3);
	sha256_final(&s, d);
	hex(d, h);
	CHECK("sha256 of abc", !strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	static uint8_t big[1000003];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + (i >> 9));
	FILE *f = fopen("/tmp/cowboot-sha-test", "wb");
	fwrite(big, 1, sizeof(big), f);
	fclose(f);
	sha256_init(&s);
	for (size_t off = 0; off < sizeof(big); off += 4093)
		sha256_update(&s, big + off, sizeof(big) - off < 4093 ? sizeof(big) - off : 4093);
	sha256_final(&s, d);
	hex(d, h);
	char want[80] = "";
	f = popen("sha256sum /tmp/cowboot-sha-test", "r");
	if (f) {
		if (!fgets(want, sizeof(want), f))
			want[0] = '\0';
		pclose(f);
	}
	remove("/tmp/cowboot-sha-test");
	CHECK("sha256 of 1 MB in odd pieces equals sha256sum", !strncmp(h, want, 64));
	CHECK("crc32c check value", crc32c(0, "123456789", 9) == 0xE3069283u);
	CHECK("crc32c continues across pieces", crc32c(crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u);
	CHECK("crc32 (IEEE) check value", crc32_ieee(0, "123456789", 9) == 0xCBF43926u);
	return CHECK_DONE();
}
