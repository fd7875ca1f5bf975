; CPU glue C cannot express: loading the GDT (a far return reloads CS) and the exception entry
; entry points, which give every vector the same frame before calling exception_handler().
bits 64
default rel
section .text

global gdt_load
global idt_load
global isr_entries
extern exception_handler

; void gdt_load(const void *gdtr, uint16_t code_sel, uint16_t data_sel)
gdt_load:
	lgdt [rdi]
	mov ax, dx
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov fs, ax
	mov gs, ax
	movzx rsi, si
	push rsi
	lea rax, [.reloaded]
	push rax
	retfq
.reloaded:
	ret

; void idt_load(const void *idtr)
idt_load:
	lidt [rdi]
	ret

; Vectors that push an error code themselves; the others push a zero so the frame is uniform.
%macro ISR_ENTRY 1
	align 16
%if %1 == 8 || (%1 >= 10 && %1 <= 14) || %1 == 17 || %1 == 21 || %1 == 29 || %1 == 30
	push qword %1
%else
	push qword 0
	push qword %1
%endif
	jmp isr_common
%endmacro

	align 16
isr_entries:
%assign v 0
%rep 32
	ISR_ENTRY v
%assign v v+1
%endrep

isr_common:
	push rax
	push rbx
	push rcx
	push rdx
	push rsi
	push rdi
	push rbp
	push r8
	push r9
	push r10
	push r11
	push r12
	push r13
	push r14
	push r15
	mov rdi, rsp
	and rsp, -16
	call exception_handler
.halt:
	cli
	hlt
	jmp .halt
section .note.GNU-stack noalloc noexec nowrite progbits

section .text

; void task_switch(uint64_t *save_rsp, uint64_t next_rsp)
; Cooperative switch: only the callee-saved registers of the SysV ABI need keeping, because
; every switch happens at a C call boundary.
global task_switch
global task_trampoline
extern task_entry
task_switch:
	push rbp
	push rbx
	push r12
	push r13
	push r14
	push r15
	mov [rdi], rsp
	mov rsp, rsi
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	pop rbp
	ret

; A new task's first switch returns here with an aligned stack; task_entry never returns.
task_trampoline:
	xor ebp, ebp
	call task_entry
	ud2
