/* Physical pages from the UEFI map's conventional memory, and a first-fit heap on top.
 * Pages are handed out from the top of each free range down; freed runs go on a free list. */
#include "mem.h"
#include "console.h"
#include "shell.h"
#include "../boot/bootinfo.h"
#include "../lib/port.h"
#include "../lib/errors.h"

#define MAX_FREE 256

struct run { uint64_t base, pages; };
static struct run runs[MAX_FREE];     /* free physical runs, unordered */
static int nruns;
static uint64_t total_pages, used_pages;

static void add_run(uint64_t base, uint64_t pages)
{
	if (!pages)
		return;
	/* Merge with a neighbour when possible, so freed memory can be reused for larger asks. */
	for (int i = 0; i < nruns; i++) {
		if (runs[i].base + runs[i].pages * PAGE_SIZE == base) {
			runs[i].pages += pages;
			return;
		}
		if (base + pages * PAGE_SIZE == runs[i].base) {
			runs[i].base = base;
			runs[i].pages += pages;
			return;
		}
	}
	if (nruns < MAX_FREE)
		runs[nruns++] = (struct run){ base, pages };
	/* else: the page is leaked rather than corrupting the table; cannot happen in practice
	 * because frees merge back into the runs they came from. */
}

void mem_init(void)
{
	const struct boot_info *bi = boot_info_get();
	for (uint32_t i = 0; i < bi->mem_count; i++) {
		const struct boot_mem_range *r = &bi->mem[i];
		uint64_t base = r->base, pages = r->pages;
		if (!r->usable)
			continue;
		if (base < 0x100000) {             /* keep the first MiB for firmware leftovers */
			uint64_t skip = (0x100000 - base) / PAGE_SIZE;
			if (skip >= pages)
				continue;
			base += skip * PAGE_SIZE;
			pages -= skip;
		}
		total_pages += pages;
		add_run(base, pages);
	}
}

static void *alloc_from(uint64_t npages, uint64_t limit)
{
	for (int i = 0; i < nruns; i++) {
		struct run *r = &runs[i];
		if (r->pages < npages)
			continue;
		uint64_t top = r->base + r->pages * PAGE_SIZE;
		if (top > limit) {
			if (r->base + npages * PAGE_SIZE > limit)
				continue;
			/* Take the highest pages below the limit: split the run in two. */
			uint64_t start = limit - npages * PAGE_SIZE;
			uint64_t after = (top - limit) / PAGE_SIZE;
			r->pages = (start - r->base) / PAGE_SIZE;
			add_run(limit, after);
			used_pages += npages;
			void *p = (void *)(uintptr_t)start;
			memset(p, 0, npages * PAGE_SIZE);
			return p;
		}
		r->pages -= npages;
		used_pages += npages;
		void *p = (void *)(uintptr_t)(r->base + r->pages * PAGE_SIZE);
		memset(p, 0, npages * PAGE_SIZE);
		return p;
	}
	return NULL;
}

void *page_alloc(size_t npages)
{
	return npages ? alloc_from(npages, UINT64_MAX) : NULL;
}

void *page_alloc_low4g(size_t npages)
{
	return npages ? alloc_from(npages, 0x100000000ULL) : NULL;
}

void page_free(void *p, size_t npages)
{
	if (!p || !npages)
		return;
	used_pages -= npages;
	add_run((uint64_t)(uintptr_t)p, npages);
}

void *dma_alloc(size_t bytes, size_t align)
{
	(void)align;   /* page alignment satisfies every align up to 4 KiB */
	return page_alloc((bytes + PAGE_SIZE - 1) / PAGE_SIZE);
}

void dma_free(void *p, size_t bytes)
{
	page_free(p, (bytes + PAGE_SIZE - 1) / PAGE_SIZE);
}

/* ---- heap: power-of-two size classes carved from 1 MiB chunks ----
 * A freed block returns to its class's list and is reused for the same class, so a long-running
 * appliance's heap cannot fragment into unusable pieces; blocks over 128 KiB come
 * straight from the page allocator and go back to it. */

struct hblock {
	size_t size;            /* payload bytes (the class size, or the page run's) */
	struct hblock *next;    /* free list link (free blocks only) */
};
#define HDR 16
#define MIN_CLASS 4             /* 16 bytes */
#define NCLASSES 14             /* up to 128 KiB */
#define CHUNK_BYTES (1u << 20)
#define MAX_CLASS ((size_t)1 << (MIN_CLASS + NCLASSES - 1))   /* 128 KiB */

static struct hblock *free_lists[NCLASSES];
static uint8_t *chunk_pos, *chunk_end;
static uint64_t heap_size, heap_used;

static int size_class(size_t n)
{
	int c = 0;
	while (((size_t)1 << (MIN_CLASS + c)) < n)
		c++;
	return c;
}

void *kmalloc(size_t n)
{
	if (!n)
		n = 1;
	if (n > MAX_CLASS) {
		size_t pages = (n + HDR + PAGE_SIZE - 1) / PAGE_SIZE;
		struct hblock *b = page_alloc(pages);
		if (!b)
			return NULL;
		b->size = pages * PAGE_SIZE - HDR;
		heap_used += b->size;
		return (char *)b + HDR;
	}
	int c = size_class(n);
	size_t csize = (size_t)1 << (MIN_CLASS + c);
	struct hblock *b = free_lists[c];
	if (b) {
		free_lists[c] = b->next;
	} else {
		if (!chunk_pos || (size_t)(chunk_end - chunk_pos) < csize + HDR) {
			uint8_t *chunk = page_alloc(CHUNK_BYTES / PAGE_SIZE);
			if (!chunk)
				return NULL;
			/* The rest of the old chunk is given to the lists rather than lost. */
			while (chunk_pos && (size_t)(chunk_end - chunk_pos) >= HDR + 16) {
				int k = size_class((size_t)(chunk_end - chunk_pos) - HDR);
				if (((size_t)1 << (MIN_CLASS + k)) > (size_t)(chunk_end - chunk_pos) - HDR)
					k--;
				if (k >= NCLASSES)
					k = NCLASSES - 1;
				struct hblock *r = (struct hblock *)chunk_pos;
				r->size = (size_t)1 << (MIN_CLASS + k);
				r->next = free_lists[k];
				free_lists[k] = r;
				chunk_pos += HDR + r->size;
			}
			chunk_pos = chunk;
			chunk_end = chunk + CHUNK_BYTES;
			heap_size += CHUNK_BYTES;
		}
		b = (struct hblock *)chunk_pos;
		b->size = csize;
		chunk_pos += HDR + csize;
	}
	heap_used += b->size;
	return (char *)b + HDR;
}

void *kzalloc(size_t n)
{
	void *p = kmalloc(n);
	if (p)
		memset(p, 0, n);
	return p;
}

void kfree(void *p)
{
	if (!p)
		return;
	struct hblock *b = (struct hblock *)((char *)p - HDR);
	heap_used -= b->size;
	if (b->size > MAX_CLASS) {
		page_free(b, (b->size + HDR) / PAGE_SIZE);
		return;
	}
	int c = size_class(b->size);
	b->next = free_lists[c];
	free_lists[c] = b;
}

void *krealloc(void *p, size_t n)
{
	if (!p)
		return kmalloc(n);
	struct hblock *b = (struct hblock *)((char *)p - HDR);
	if (b->size >= n)
		return p;
	void *q = kmalloc(n);
	if (q) {
		memcpy(q, p, b->size);
		kfree(p);
	}
	return q;
}

void mem_get_stats(struct mem_stats *st)
{
	st->total_bytes = total_pages * PAGE_SIZE;
	st->free_bytes = (total_pages - used_pages) * PAGE_SIZE;
	st->pages_used = used_pages;
	st->heap_size = heap_size;
	st->heap_used = heap_used;
}

static const char *efi_type_name(uint32_t t)
{
	static const char *const names[] = {
		"reserved", "loader code", "loader data", "boot code", "boot data",
		"runtime code", "runtime data", "conventional", "unusable", "ACPI reclaim",
		"ACPI NVS", "MMIO", "MMIO port", "PAL code", "persistent",
	};
	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "other";
}

static int cmd_mem(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return -E_USAGE;
	const struct boot_info *bi = boot_info_get();
	uint64_t by_type[16] = { 0 };
	for (uint32_t i = 0; i < bi->mem_count; i++)
		by_type[bi->mem[i].efi_type < 15 ? bi->mem[i].efi_type : 15] += bi->mem[i].pages;
	kprintf("memory map (%u ranges):\n", bi->mem_count);
	for (uint32_t t = 0; t < 16; t++)
		if (by_type[t])
			kprintf("  %-14s %8llu KiB\n", efi_type_name(t), (unsigned long long)by_type[t] * 4);
	struct mem_stats st;
	mem_get_stats(&st);
	kprintf("total %llu MiB, free %llu MiB, heap %llu KiB used of %llu KiB\n",
		(unsigned long long)(st.total_bytes >> 20), (unsigned long long)(st.free_bytes >> 20),
		(unsigned long long)(st.heap_used >> 10), (unsigned long long)(st.heap_size >> 10));
	return 0;
}
COMMAND(mem, "mem", "memory map summary and free memory", NULL, cmd_mem);
