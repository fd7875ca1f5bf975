/* libFuzzer target: the console's pure parsing. The first byte picks the part: 0 a command
 * line split into words and each word read as a number, a size, hex bytes and key=value, the
 * words then read against the rescue options' table (lib/opts.c); 1 a cowboot.cfg
 * script (newlines), 2 load options (';'), each command then split as the shell does; 3 keys
 * fed to the line editor; 4 numbers and sizes, one a line, checked against each other. */
#include <stdlib.h>
#include <string.h>
#include "../../lib/errors.h"
#include "../../lib/args.h"
#include "../../lib/lineedit.h"
#include "../../lib/script.h"
#include "../../rescue/rescue_args.h"

static void words(char *line, size_t cap)
{
	char *argv[ARGS_MAX];
	int argc = args_split(line, argv, ARGS_MAX);
	if (argc > ARGS_MAX || (argc < 0 && argc != -E_SYNTAX && argc != -E_RANGE))
		abort();
	for (int i = 0; i < argc; i++) {
		if (argv[i] < line || argv[i] >= line + cap)
			abort();   /* a word outside the line */
		uint64_t v;
		const char *val;
		args_u64(argv[i], &v);
		args_size(argv[i], &v);
		if (args_kv(argv[i], "size", &val) && (val < argv[i] || val > argv[i] + strlen(argv[i])))
			abort();
		uint8_t hex[8];
		uint32_t hn;
		if (args_hex(argv[i], hex, sizeof(hex), &hn) == 0 && (hn < 1 || hn > sizeof(hex)))
			abort();
	}
	if (argc <= 0)
		return;
	struct rescue_args a;
	struct opts_result r;
	int rc = rescue_args_parse(&a, argc & 1 ? 512 : 4096, argc, argv, 2, &r);
	if ((rc != 0 && rc != -E_USAGE) || strlen(r.why) >= sizeof(r.why) || r.npos > 2 || (rc == 0 && r.why[0]))
		abort();
	for (int i = 0; rc == 0 && i < r.npos; i++)
		if (r.pos[i] < 0 || r.pos[i] >= argc || (i && r.pos[i] <= r.pos[i - 1]))
			abort();
	if (rc == 0 && (a.opt.retries > 1000 || a.opt.cluster < 512 || a.opt.cluster > (8u << 20) ||
			(a.opt.skip_max && a.opt.skip_max < a.opt.skip_min) || !a.opt.passes))
		abort();   /* what the table's bounds promise */
}

static void editor(const uint8_t *keys, size_t n)
{
	static struct lineedit le;
	le_init(&le);
	le_start(&le);
	char out[LE_LINE * 3];
	for (size_t i = 0; i < n; i++) {
		enum le_result r = le_feed(&le, keys[i], out, (int)sizeof(out));
		if (le.len < 0 || le.len >= LE_LINE || le.pos < 0 || le.pos > le.len ||
		    strlen(le.buf) != (size_t)le.len || strlen(out) >= sizeof(out))
			abort();
		if (r == LE_ENTER) {
			le_remember(&le);
			char line[LE_LINE];
			memcpy(line, le.buf, sizeof(line));
			words(line, sizeof(line));
			le_start(&le);
		}
	}
}

static void numbers(char *text)
{
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		uint64_t a, b;
		int ra = args_u64(line, &a), rb = args_size(line, &b);
		if (ra == 0 && (rb != 0 || a != b))
			abort();   /* a plain number is a size of that many bytes */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	size_t n = size - 1;
	char *text = malloc(n + 1);
	memcpy(text, data + 1, n);
	text[n] = '\0';
	switch (data[0] % 5) {
	case 0:
		words(text, n + 1);
		break;
	case 1:
	case 2: {
		struct script sc;
		script_init(&sc, text, data[0] % 5 == 1 ? '\n' : ';');
		int last = 0;
		for (char *line; (line = script_next(&sc));) {
			if (sc.lineno <= last || line < text || line > text + n || *line == ' ' || *line == '#')
				abort();
			last = sc.lineno;
			words(line, (size_t)(text + n + 1 - line));
		}
		break;
	}
	case 3:
		editor(data + 1, n);
		break;
	case 4:
		numbers(text);
		break;
	}
	free(text);
	return 0;
}
