/* Physical pages (over the UEFI memory map) and the kernel heap. Memory is identity-mapped
 * (the firmware's page tables are kept), so a pointer is its own physical/DMA address. */
#ifndef KERNEL_MEM_H
#define KERNEL_MEM_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_SIZE 4096u

/* Zeroed, page-aligned, physically contiguous, below 4 GiB when low4g is set. NULL when out. */
void *page_alloc(size_t npages);
void *page_alloc_low4g(size_t npages);
void page_free(void *p, size_t npages);

/* DMA buffers: zeroed, contiguous, aligned to at least `align` (a power of two >= 16). */
void *dma_alloc(size_t bytes, size_t align);
void dma_free(void *p, size_t bytes);
static inline uint64_t dma_addr(const void *p) { return (uint64_t)(uintptr_t)p; }

void *kmalloc(size_t n);
void *kzalloc(size_t n);
void *krealloc(void *p, size_t n);
void kfree(void *p);

struct mem_stats { uint64_t total_bytes, free_bytes, heap_used, heap_size, pages_used; };
void mem_get_stats(struct mem_stats *st);
void mem_init(void);   /* from kernel_main: take the conventional memory of the UEFI map */

/* MMIO barriers and accessors (compiler + ordering barriers; x86 is strongly ordered for UC). */
#define mmio_barrier() __asm__ __volatile__("mfence" ::: "memory")
static inline uint32_t mmio_read32(const volatile void *a) { return *(const volatile uint32_t *)a; }
static inline void mmio_write32(volatile void *a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline uint64_t mmio_read64(const volatile void *a) { return *(const volatile uint64_t *)a; }
static inline void mmio_write64(volatile void *a, uint64_t v) { *(volatile uint64_t *)a = v; }
static inline uint16_t mmio_read16(const volatile void *a) { return *(const volatile uint16_t *)a; }
static inline void mmio_write16(volatile void *a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline uint8_t mmio_read8(const volatile void *a) { return *(const volatile uint8_t *)a; }
static inline void mmio_write8(volatile void *a, uint8_t v) { *(volatile uint8_t *)a = v; }

#endif
