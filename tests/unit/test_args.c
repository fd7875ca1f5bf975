/* The shell's word splitting and number/size parsing. */
#include <stdint.h>
#include <string.h>
#include "../lib/check.h"
#include "../../lib/errors.h"
#include "../../lib/args.h"

int main(void)
{
	char l1[] = "  read vd0   0x10 8 ";
	char *argv[ARGS_MAX];
	int argc = args_split(l1, argv, ARGS_MAX);
	CHECK("split counts words", argc == 4);
	CHECK("split keeps words", argc == 4 && !strcmp(argv[0], "read") && !strcmp(argv[3], "8"));
	char l2[] = "echo \"a b\" c\"d e\"f";
	argc = args_split(l2, argv, ARGS_MAX);
	CHECK("quotes group words", argc == 3 && !strcmp(argv[1], "a b") && !strcmp(argv[2], "cd ef"));
	char l3[] = "echo \"open";
	CHECK("unterminated quote is a syntax error", args_split(l3, argv, ARGS_MAX) == -E_SYNTAX);
	char l4[] = "a b c d";
	CHECK("too many words is refused", args_split(l4, argv, 3) == -E_RANGE);
	char l5[] = "   ";
	CHECK("blank line has no words", args_split(l5, argv, ARGS_MAX) == 0);

	uint64_t v;
	CHECK("decimal", args_u64("1234", &v) == 0 && v == 1234);
	CHECK("hex", args_u64("0xFFff", &v) == 0 && v == 0xffff);
	CHECK("a leading zero is decimal, not octal", args_u64("017", &v) == 0 && v == 17);
	CHECK("size with a leading zero is decimal too", args_size("010", &v) == 0 && v == 10);
	CHECK("size in sectors with a sector size", args_size_in("8s", 4096, &v) == 0 && v == 32768);
	CHECK("size in sectors refused without one", args_size("8s", &v) == -E_INVAL);
	CHECK("size 1MB is decimal everywhere", args_size_in("1MB", 512, &v) == 0 && v == 1000000);
	CHECK("max u64", args_u64("18446744073709551615", &v) == 0 && v == UINT64_MAX);
	CHECK("overflow refused", args_u64("18446744073709551616", &v) == -E_INVAL);
	CHECK("trailing junk refused", args_u64("12ab", &v) == -E_INVAL);
	CHECK("empty refused", args_u64("", &v) == -E_INVAL);
	CHECK("bare 0x refused", args_u64("0x", &v) == -E_INVAL);
	CHECK("negative refused", args_u64("-1", &v) == -E_INVAL);
	CHECK("size k", args_size("64k", &v) == 0 && v == 65536);
	CHECK("size MiB", args_size("2MiB", &v) == 0 && v == 2u << 20);
	CHECK("size GB is decimal", args_size("1GB", &v) == 0 && v == 1000000000ULL);
	CHECK("size T", args_size("16T", &v) == 0 && v == 16ULL << 40);
	CHECK("size overflow refused", args_size("20000000T", &v) == -E_INVAL);
	CHECK("size bad suffix refused", args_size("5q", &v) == -E_INVAL);
	const char *val;
	CHECK("key=value found", args_kv("retries=3", "retries", &val) && !strcmp(val, "3"));
	CHECK("key prefix is not a match", !args_kv("retriesx=3", "retries", &val));
	CHECK("key without = is not a match", !args_kv("retries", "retries", &val));
	uint8_t hb[4];
	uint32_t hn;
	CHECK("hex bytes, 0x optional", args_hex("0xA5ff", hb, 4, &hn) == 0 && hn == 2 && hb[0] == 0xa5 && hb[1] == 0xff &&
	      args_hex("01020304", hb, 4, &hn) == 0 && hn == 4);
	CHECK("hex bytes: odd, empty, too many or not hex refused", args_hex("abc", hb, 4, &hn) < 0 &&
	      args_hex("", hb, 4, &hn) < 0 && args_hex("0x", hb, 4, &hn) < 0 && args_hex("0102030405", hb, 4, &hn) < 0 &&
	      args_hex("zz", hb, 4, &hn) < 0);
	return CHECK_DONE();
}
