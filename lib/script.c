/* Boot script splitting (pure: in the image and in the host fuzzer). */
#include "script.h"
#include "port.h"

void script_init(struct script *s, char *text, char sep)
{
	s->next = text;
	s->sep = sep;
	s->lineno = 0;
}

char *script_next(struct script *s)
{
	while (s->next) {
		char *p = s->next;
		char *end = strchr(p, s->sep);
		if (end)
			*end = '\0';
		s->next = end ? end + 1 : NULL;
		s->lineno++;
		char *cr = strchr(p, '\r');
		if (cr)
			*cr = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p && *p != '#')
			return p;
	}
	return NULL;
}
