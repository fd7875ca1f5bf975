/* The kernel's page allocator and heap (kernel/mem.c), run on the host over a fake UEFI
 * memory map whose "conventional" ranges are ordinary host memory. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../../boot/bootinfo.h"

static struct boot_info bi;
const struct boot_info *boot_info_get(void) { return &bi; }
int kprintf(const char *fmt, ...) { (void)fmt; return 0; }

#include "../../kernel/mem.c"

int main(void)
{
	/* Two usable ranges and a reserved one between them. */
	size_t a_pages = 2048, b_pages = 512;
	uint8_t *a = aligned_alloc(4096, a_pages * 4096), *b = aligned_alloc(4096, b_pages * 4096);
	bi.mem[0] = (struct boot_mem_range){ (uint64_t)(uintptr_t)a, a_pages, 7, 1 };
	bi.mem[1] = (struct boot_mem_range){ 0x1000, 16, 0, 0 };
	bi.mem[2] = (struct boot_mem_range){ (uint64_t)(uintptr_t)b, b_pages, 7, 1 };
	bi.mem_count = 3;
	mem_init();
	struct mem_stats st;
	mem_get_stats(&st);
	CHECK("only usable ranges are counted", st.total_bytes == (a_pages + b_pages) * 4096 && st.free_bytes == st.total_bytes);
	uint8_t *p = page_alloc(3);
	int inside = p && ((p >= a && p + 3 * 4096 <= a + a_pages * 4096) || (p >= b && p + 3 * 4096 <= b + b_pages * 4096));
	CHECK("pages come from a usable range, page-aligned", inside && ((uintptr_t)p & 4095) == 0);
	int zero = 1;
	for (int i = 0; i < 3 * 4096; i++)
		zero &= p[i] == 0;
	CHECK("pages are zeroed", zero);
	memset(p, 0xab, 3 * 4096);
	page_free(p, 3);
	uint8_t *q = page_alloc(3);
	CHECK("freed pages are reused and zeroed again", q == p && q[100] == 0);
	page_free(q, 3);
	CHECK("an impossible request fails cleanly", page_alloc(a_pages + b_pages + 1) == NULL);
	uint8_t *big = page_alloc(a_pages);
	CHECK("a request as large as the largest range succeeds", big == a);
	mem_get_stats(&st);
	CHECK("stats follow allocations", st.free_bytes == b_pages * 4096);
	page_free(big, a_pages);

	/* Heap: many sizes, interleaved frees, contents intact. */
	void *blocks[500];
	size_t sizes[500];
	int ok = 1;
	srand(7);
	for (int round = 0; round < 20 && ok; round++) {
		for (int i = 0; i < 500; i++) {
			sizes[i] = (size_t)(rand() % (i % 50 == 0 ? 600000 : 3000)) + 1;
			blocks[i] = kmalloc(sizes[i]);
			if (!blocks[i]) {
				ok = 0;
				break;
			}
			memset(blocks[i], i & 0xff, sizes[i]);
			ok &= ((uintptr_t)blocks[i] & 15) == 0;
		}
		for (int i = 0; ok && i < 500; i++) {
			const uint8_t *c = blocks[i];
			for (size_t k = 0; k < sizes[i]; k += 97)
				ok &= c[k] == (i & 0xff);
		}
		for (int i = round % 2; ok && i < 500; i += 2)
			kfree(blocks[i]);
		for (int i = 1 - round % 2; ok && i < 500; i += 2)
			kfree(blocks[i]);
	}
	CHECK("20 rounds of 500 mixed-size allocations keep their contents, 16-byte aligned", ok);
	mem_get_stats(&st);
	CHECK("the heap is empty again after freeing everything", st.heap_used == 0);
	char *r = kzalloc(100);
	strcpy(r, "keep me");
	r = krealloc(r, 5000);
	CHECK("krealloc keeps the contents", r && !strcmp(r, "keep me"));
	kfree(r);
	CHECK("kfree(NULL) is harmless", (kfree(NULL), 1));
	return CHECK_DONE();
}
