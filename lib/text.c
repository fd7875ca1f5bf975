/* Fixed-width text fields (lib/text.h): one decoder for every identity string a device hands over. */
#include "text.h"
#include "port.h"

void text_field(char *out, const uint8_t *in, unsigned n, char other)
{
	for (unsigned i = 0; i < n; i++)
		out[i] = in[i] >= 0x20 && in[i] <= 0x7e ? (char)in[i] : in[i] ? other : ' ';
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	unsigned s = 0;
	while (out[s] == ' ')
		s++;
	memmove(out, out + s, n - s + 1);
}

void text_field_ata(char *out, const uint8_t *words, unsigned nwords, char other)
{
	uint8_t b[80];
	if (nwords > 40)
		nwords = 40;
	for (unsigned i = 0; i < nwords; i++) {
		b[2 * i] = words[2 * i + 1];
		b[2 * i + 1] = words[2 * i];
	}
	text_field(out, b, 2 * nwords, other);
}
