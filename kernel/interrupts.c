/* Our own GDT and IDT, and the exception report: a fault prints vector, error code, RIP,
 * registers and a frame-pointer stack trace on the console, then halts. */
#include <stdint.h>
#include "console.h"
#include "interrupts.h"
#include "shell.h"
#include "task.h"
#include "../boot/bootinfo.h"
#include "../lib/errors.h"
#include "../lib/port.h"

struct exc_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

void gdt_load(const void *gdtr, uint16_t code_sel, uint16_t data_sel);
void idt_load(const void *idtr);
extern char isr_entries[];
void exception_handler(struct exc_frame *f) __attribute__((noreturn));

struct __attribute__((packed)) table_ptr { uint16_t limit; uint64_t base; };
struct idt_gate { uint16_t off0, sel; uint8_t ist, type; uint16_t off1; uint32_t off2, zero; };

static uint64_t gdt[3] = {
	0,
	0x00af9a000000ffffULL,   /* 0x08: 64-bit code, present, ring 0 */
	0x00cf92000000ffffULL,   /* 0x10: data */
};
static struct idt_gate idt[32];

void interrupts_init(void)
{
	struct table_ptr g = { sizeof(gdt) - 1, (uint64_t)(uintptr_t)gdt };
	gdt_load(&g, 0x08, 0x10);
	for (int v = 0; v < 32; v++) {
		uint64_t a = (uint64_t)(uintptr_t)(isr_entries + 16 * v);
		idt[v] = (struct idt_gate){ (uint16_t)a, 0x08, 0, 0x8e, (uint16_t)(a >> 16),
					    (uint32_t)(a >> 32), 0 };
	}
	struct table_ptr i = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
	idt_load(&i);
}

static const char *const vec_names[32] = {
	"divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
	"invalid opcode", "device not available", "double fault", "coprocessor overrun",
	"invalid TSS", "segment not present", "stack fault", "general protection",
	"page fault", "reserved", "x87 FP error", "alignment check", "machine check",
	"SIMD FP error", "virtualization", "control protection",
};

/* The frame-pointer chain, trusted no further than it stays sane: each frame inside the task's
 * stack above the faulting RSP and above the one before, each return address inside the image.
 * A smashed stack ends the trace with a word on why, never with garbage offsets. */
static void stack_trace(const struct exc_frame *f, uint64_t base)
{
	uint64_t end = base + boot_info_get()->image_size;
	uintptr_t lo, hi;
	task_stack_range(&lo, &hi);
	if (f->rsp > lo)
		lo = f->rsp;
	kprintf("stack trace (image offsets, for addr2line -e build/cowboot.so):\n");
	if (f->rip >= base && f->rip < end)
		kprintf("  #0 0x%llx\n", (unsigned long long)(f->rip - base));
	else
		kprintf("  #0 RIP %016llx is outside the image (a call or return through a smashed pointer?)\n",
			(unsigned long long)f->rip);
	uintptr_t fp = f->rbp;
	for (int depth = 1; depth < 16 && fp; depth++) {
		if ((fp & 7) || fp < lo || fp > hi - 16) {
			kprintf("  (frame pointer %016llx is outside the stack %016llx-%016llx: trace ends)\n",
				(unsigned long long)fp, (unsigned long long)lo, (unsigned long long)hi);
			return;
		}
		const uint64_t *frame = (const uint64_t *)fp;
		if (frame[1] < base || frame[1] >= end) {
			kprintf("  (return address %016llx is outside the image: trace ends)\n",
				(unsigned long long)frame[1]);
			return;
		}
		kprintf("  #%d 0x%llx\n", depth, (unsigned long long)(frame[1] - base));
		if (fp == hi - 16)
			return;   /* kernel_main's frame: the bottom of the shell's stack */
		if (frame[0] && frame[0] <= fp) {
			kprintf("  (frame pointer %016llx goes backwards: trace ends)\n", (unsigned long long)frame[0]);
			return;
		}
		lo = fp + 16;
		fp = frame[0];
	}
}

void exception_handler(struct exc_frame *f)
{
	uint64_t base = boot_info_get()->image_base, cr2;
	__asm__ __volatile__("mov %%cr2, %0" : "=r"(cr2));
	const char *name = f->vector < 32 && vec_names[f->vector] ? vec_names[f->vector] : "exception";
	console_panic();   /* what was queued goes out first; the report itself is written directly */
	kprintf("\n*** CPU EXCEPTION %llu (%s) error code 0x%llx\n", (unsigned long long)f->vector,
		name, (unsigned long long)f->error);
	kprintf("RIP %016llx (image+0x%llx)  CS %04llx  RFLAGS %016llx\n",
		(unsigned long long)f->rip, (unsigned long long)(f->rip - base),
		(unsigned long long)f->cs, (unsigned long long)f->rflags);
	if (f->vector == 14)
		kprintf("CR2 %016llx (faulting address)\n", (unsigned long long)cr2);
	kprintf("RAX %016llx RBX %016llx RCX %016llx RDX %016llx\n", (unsigned long long)f->rax,
		(unsigned long long)f->rbx, (unsigned long long)f->rcx, (unsigned long long)f->rdx);
	kprintf("RSI %016llx RDI %016llx RBP %016llx RSP %016llx\n", (unsigned long long)f->rsi,
		(unsigned long long)f->rdi, (unsigned long long)f->rbp, (unsigned long long)f->rsp);
	kprintf("R8  %016llx R9  %016llx R10 %016llx R11 %016llx\n", (unsigned long long)f->r8,
		(unsigned long long)f->r9, (unsigned long long)f->r10, (unsigned long long)f->r11);
	kprintf("R12 %016llx R13 %016llx R14 %016llx R15 %016llx\n", (unsigned long long)f->r12,
		(unsigned long long)f->r13, (unsigned long long)f->r14, (unsigned long long)f->r15);
	stack_trace(f, base);
	kprintf("system halted\n");
	for (;;)
		__asm__ __volatile__("cli; hlt");
}

/* A stack overrun as a bad parser makes one: the saved frame pointer and return address are
 * overwritten, so the return jumps off the image with a garbage frame chain behind it. */
static void __attribute__((noinline)) smash_frame(void)
{
	volatile uint64_t *frame = __builtin_frame_address(0);
	frame[0] = 0x4141414141414141ULL;
	frame[1] = 0x00007ff0deadbee0ULL;   /* canonical, far above anything mapped */
}

/* Test-only: faults on purpose so the report above can be checked. */
static int cmd_crash(int argc, char **argv)
{
	if (argc != 2)
		return -E_USAGE;
	if (!strcmp(argv[1], "ud")) {
		__asm__ __volatile__("ud2");
	} else if (!strcmp(argv[1], "pf")) {
		/* Far above any physical memory the firmware maps. */
		volatile uint64_t *p = (volatile uint64_t *)0x00007ff000000000ULL;
		*p = 1;
	} else if (!strcmp(argv[1], "gp")) {
		volatile uint64_t *p = (volatile uint64_t *)0x8000000000000000ULL;   /* non-canonical */
		*p = 1;
	} else if (!strcmp(argv[1], "smash")) {
		smash_frame();
	} else if (!strcmp(argv[1], "div")) {
		volatile int zero = 0, one = 1;
		kprintf("%d\n", one / zero);
	} else {
		return -E_USAGE;
	}
	return 0;
}
COMMAND(crash, "crash <ud|pf|gp|div|smash>", "test only: raise a CPU exception on purpose",
	"Triggers the chosen exception so the exception report can be tested; the system halts.",
	cmd_crash);
