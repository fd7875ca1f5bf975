# cowboot: the EFI image (boot/ kernel/ drivers/ cow/), host tools (tools/ + cow/), tests.
# Sources are picked up by directory, so adding a file needs no edit here:
#   image:       boot/*.c boot/*.asm kernel/*.c kernel/*.asm drivers/*.c cow/*.c
#   host lib:    cow/*.c kernel/lib_*.c drivers/lib_*.c tools/lib_*.c   (pure code, also in tests)
#   host tools:  tools/<name>.c (not lib_*) -> build/<name>
#   unit tests:  tests/unit/test_*.c -> build/tests/test_*  (+ tests/lib/*.c fakes)
#   fuzzers:     tests/fuzz/fuzz_*.c -> build/fuzz/fuzz_*   (clang libFuzzer)
#   scenarios:   tests/tools/test_*, tests/qemu/test_*.py   (run by tests/run.py)

BUILD    ?= build
CC       ?= gcc
HOSTCC   ?= gcc
CLANG    ?= clang
NASM     ?= nasm
LD       ?= ld
OBJCOPY  ?= objcopy
EFI_INC  ?= /usr/include/efi
EFI_LIB  ?= /usr/lib
OVMF_DIR ?= /usr/share/OVMF
PYTHON   ?= python3

VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
WARN     := -Wall -Wextra -Werror

IMG_CFLAGS := -std=c11 -O2 -g $(WARN) -fno-omit-frame-pointer -ffreestanding -fno-stack-protector -fno-stack-check \
	-fpic -fshort-wchar -mno-red-zone -maccumulate-outgoing-args -fno-strict-aliasing \
	-fno-builtin-printf -DGNU_EFI_USE_MS_ABI -DCOWBOOT_EFI -DCOWBOOT_VERSION='"$(VERSION)"' \
	-I. -I$(EFI_INC) -I$(EFI_INC)/x86_64
HOST_CFLAGS := -std=c11 -O2 -g $(WARN) -D_GNU_SOURCE -DCOWBOOT_VERSION='"$(VERSION)"' -I.
FUZZ_CFLAGS := -std=c11 -O1 -g -Wall -Wextra -D_GNU_SOURCE -I. \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

IMG_C    := $(wildcard boot/*.c kernel/*.c drivers/*.c cow/*.c)
IMG_ASM  := $(wildcard boot/*.asm kernel/*.asm)
IMG_OBJS := $(IMG_C:%.c=$(BUILD)/img/%.o) $(IMG_ASM:%.asm=$(BUILD)/img/%.asm.o)

HOSTLIB_C    := $(wildcard cow/*.c kernel/lib_*.c drivers/lib_*.c tools/lib_*.c)
HOSTLIB_OBJS := $(HOSTLIB_C:%.c=$(BUILD)/host/%.o)
HOSTLIB      := $(BUILD)/host/libcowboot.a
TESTLIB_C    := $(wildcard tests/lib/*.c)
TESTLIB_OBJS := $(TESTLIB_C:%.c=$(BUILD)/host/%.o)

TOOL_SRCS := $(filter-out tools/lib_%.c,$(wildcard tools/*.c))
TOOLS     := $(TOOL_SRCS:tools/%.c=$(BUILD)/%)
UNIT      := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
FUZZERS   := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

# Per-tool extra libraries: LDLIBS_<tool> (e.g. LDLIBS_ntfuse := -lfuse3).
LDLIBS_ntfuse := $(shell pkg-config --libs fuse3 2>/dev/null)
CFLAGS_ntfuse := $(shell pkg-config --cflags fuse3 2>/dev/null)

EFI_APP  := $(BUILD)/cowboot.efi
BOOT_IMG := $(BUILD)/boot.img

.PHONY: all image tools tests fuzzers run test bench fuzz clean demo
# Keep intermediate objects: nothing is deleted (or printed) after the test summary.
.SECONDARY:
all: image tools tests

image: $(EFI_APP) $(BOOT_IMG)
tools: $(TOOLS)
tests: $(UNIT) $(TOOLS)
fuzzers: $(FUZZERS)

# ---- the EFI image -------------------------------------------------------------------------
$(BUILD)/img/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(IMG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/img/%.asm.o: %.asm
	@mkdir -p $(dir $@)
	$(NASM) -f elf64 -g $< -o $@

$(BUILD)/cowboot.so: $(IMG_OBJS) linker.ld
	$(LD) -nostdlib -znocombreloc -z defs -T linker.ld -shared -Bsymbolic -L$(EFI_LIB) \
		$(EFI_LIB)/crt0-efi-x86_64.o $(IMG_OBJS) -lefi -lgnuefi -o $@

$(EFI_APP): $(BUILD)/cowboot.so
	$(OBJCOPY) -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel -j .rela \
		-j '.rel.*' -j '.rela.*' -j .reloc --target efi-app-x86_64 --subsystem=10 $< $@

# A FAT image with \EFI\BOOT\BOOTX64.EFI; tests add cowboot.cfg to their own copies.
$(BOOT_IMG): $(EFI_APP)
	rm -f $@ $@.tmp && dd if=/dev/zero of=$@.tmp bs=1M count=16 status=none
	mformat -i $@.tmp -v COWBOOT ::
	mmd -i $@.tmp ::/EFI ::/EFI/BOOT
	mcopy -i $@.tmp $(EFI_APP) ::/EFI/BOOT/BOOTX64.EFI
	mv $@.tmp $@

# ---- host side -----------------------------------------------------------------------------
$(BUILD)/host/%.o: %.c
	@mkdir -p $(dir $@)
	$(HOSTCC) $(HOST_CFLAGS) -MMD -MP -c $< -o $@

$(HOSTLIB): $(HOSTLIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%: tools/%.c $(HOSTLIB)
	@mkdir -p $(dir $@)
	$(HOSTCC) $(HOST_CFLAGS) $(CFLAGS_$*) -MMD -MP $< $(HOSTLIB) $(LDLIBS_$*) -o $@

$(BUILD)/tests/%: tests/unit/%.c $(TESTLIB_OBJS) $(HOSTLIB)
	@mkdir -p $(dir $@)
	$(HOSTCC) $(HOST_CFLAGS) -MMD -MP $< $(TESTLIB_OBJS) $(HOSTLIB) -o $@

$(BUILD)/fuzz/%: tests/fuzz/%.c $(HOSTLIB_C) $(TESTLIB_C)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) $< $(HOSTLIB_C) $(TESTLIB_C) -o $@

# ---- running -------------------------------------------------------------------------------
# The demo: a generated source and cow disk pair, booted in QEMU+OVMF on the serial console.
demo: image tools
	$(PYTHON) tests/qemu/mkdemo.py $(BUILD)/demo

run: demo
	$(PYTHON) tests/qemu/run_demo.py $(BUILD)

test: all fuzzers
	$(PYTHON) tests/run.py --build $(BUILD)

bench: all
	$(PYTHON) tests/bench/run_bench.py --build $(BUILD)

fuzz: fuzzers
	$(PYTHON) tests/run.py --build $(BUILD) --only fuzz --fuzz-seconds 300

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
