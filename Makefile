# cowboot: the EFI image (boot/ kernel/ drivers/ app/ + the pure code), host tools (tools/ + the
# pure code), tests. Sources are picked up by directory, so adding a file needs no edit here:
#   pure code:   lib/ cow/ rescue/ fs/ net/   (freestanding; builds into the image and the host lib)
#   image:       boot/ kernel/ drivers/ app/ (*.c, *.asm) + the pure code
#   host lib:    the pure code + tools/lib_*.c   (also linked into tests and fuzzers)
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
comma    := ,
empty    :=
space    := $(empty) $(empty)

IMG_CFLAGS := -std=c11 -O2 -g $(WARN) -fno-omit-frame-pointer -ffreestanding -fno-stack-protector -fno-stack-check \
	-fpic -fshort-wchar -mno-red-zone -maccumulate-outgoing-args -fno-strict-aliasing \
	-fno-builtin-printf -DGNU_EFI_USE_MS_ABI -DCOWBOOT_EFI -DCOWBOOT_VERSION='"$(VERSION)"' \
	-I. -I$(EFI_INC) -I$(EFI_INC)/x86_64
HOST_CFLAGS := -std=c11 -O2 -g $(WARN) -D_GNU_SOURCE -DCOWBOOT_VERSION='"$(VERSION)"' -I.
FUZZ_CFLAGS := -std=c11 -O1 -g -Wall -Wextra -D_GNU_SOURCE -I. \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

# `make V=1` prints every command; otherwise one short line a step.
ifeq ($(V),1)
Q   :=
say :=
else
Q   := @
say  = @printf '  %-7s %s\n' '$(1)' '$(2)';
endif

PURE_DIRS := lib cow rescue fs net
PURE_C   := $(wildcard $(addsuffix /*.c,$(PURE_DIRS)))
IMG_C    := $(wildcard boot/*.c kernel/*.c drivers/*.c app/*.c) $(PURE_C)
IMG_ASM  := $(wildcard boot/*.asm kernel/*.asm)
IMG_OBJS := $(IMG_C:%.c=$(BUILD)/img/%.o) $(IMG_ASM:%.asm=$(BUILD)/img/%.asm.o)

HOSTLIB_C    := $(PURE_C) $(wildcard tools/lib_*.c)
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

.PHONY: all image tools tests fuzzers run test bench fuzz clean demo check-pure
# Keep intermediate objects: nothing is deleted (or printed) after the test summary.
.SECONDARY:
all: image tools tests

image: $(EFI_APP) $(BOOT_IMG)
tools: $(TOOLS)
tests: $(UNIT) $(TOOLS)
fuzzers: $(FUZZERS)

# ---- the rooms and their arrows --------------------------------------------------------------
# lib/ cow/ rescue/ fs/ net/ build into the image and into host tools alike: an #include of theirs
# may only name pure code (and lib/ only itself, cow/ only lib/), never kernel/, drivers/, app/ or
# boot/. In the image the arrows go one way: app/ -> drivers/ -> kernel/, so kernel/ includes
# nothing from drivers/ or app/, and drivers/ nothing from app/. A violation fails the build with
# file:line.
INC_OK_lib     := lib
INC_OK_cow     := lib cow
INC_OK_rescue  := lib cow rescue
INC_OK_fs      := lib cow fs
INC_OK_net     := lib net
INC_OK_kernel  := kernel boot $(PURE_DIRS)
INC_OK_drivers := drivers kernel boot $(PURE_DIRS)
INC_ROOMS      := $(PURE_DIRS) kernel drivers
# One awk pass over every file: each quoted #include resolved against its file's folder; the
# first folder of the result must be one its room may include.
INC_CHECK := \
	BEGIN { n = split(rules, r, " "); for (i = 1; i <= n; i++) { split(r[i], kv, "="); ok[kv[1]] = kv[2] } } \
	/^[ \t]*\#[ \t]*include[ \t]*"/ { \
		inc = $$0; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc); \
		room = FILENAME; sub(/\/.*/, "", room); dir = FILENAME; sub(/\/[^\/]*$$/, "", dir); \
		m = split(dir "/" inc, part, "/"); k = 0; \
		for (i = 1; i <= m; i++) \
			if (part[i] == "..") { if (k > 0) k--; else { k = 1; st[1] = ".."; } } \
			else if (part[i] != "." && part[i] != "") st[++k] = part[i]; \
		t = st[1]; for (i = 2; i <= k; i++) t = t "/" st[i]; \
		if (index("," ok[room] ",", "," st[1] ",") == 0) { \
			allowed = ok[room]; gsub(/,/, " ", allowed); \
			printf "%s:%d: error: includes %s, but %s/ may include only: %s\n", FILENAME, FNR, t, room, allowed > "/dev/stderr"; \
			bad = 1; } } \
	END { if (bad) { print "include check failed: an arrow against the grain (docs/architecture.md, Layout)" > "/dev/stderr"; exit 1 } }
$(BUILD)/pure.ok: $(wildcard $(addsuffix /*.[ch],$(INC_ROOMS))) Makefile
	$(call say,CHECK,includes of $(INC_ROOMS))
	$(Q)awk -v rules='$(foreach r,$(INC_ROOMS),$(r)=$(subst $(space),$(comma),$(strip $(INC_OK_$(r)))))' \
		'$(INC_CHECK)' $(filter %.c %.h,$^)
	$(Q)mkdir -p $(BUILD) && touch $@
check-pure: $(BUILD)/pure.ok

# ---- the EFI image -------------------------------------------------------------------------
$(BUILD)/img/%.o: %.c | $(BUILD)/pure.ok
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(IMG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/img/%.asm.o: %.asm
	@mkdir -p $(dir $@)
	$(call say,NASM,$<)
	$(Q)$(NASM) -f elf64 -g $< -o $@

$(BUILD)/cowboot.so: $(IMG_OBJS) linker.ld
	$(call say,LD,$@)
	$(Q)$(LD) -nostdlib -znocombreloc -z defs -T linker.ld -shared -Bsymbolic -L$(EFI_LIB) \
		$(EFI_LIB)/crt0-efi-x86_64.o $(IMG_OBJS) -lefi -lgnuefi -o $@

$(EFI_APP): $(BUILD)/cowboot.so
	$(call say,OBJCOPY,$@)
	$(Q)$(OBJCOPY) -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel -j .rela \
		-j '.rel.*' -j '.rela.*' -j .reloc --target efi-app-x86_64 --subsystem=10 $< $@

# A FAT image with \EFI\BOOT\BOOTX64.EFI; tests add cowboot.cfg to their own copies.
$(BOOT_IMG): $(EFI_APP)
	$(call say,IMG,$@)
	$(Q)rm -f $@ $@.tmp && dd if=/dev/zero of=$@.tmp bs=1M count=16 status=none
	$(Q)mformat -i $@.tmp -v COWBOOT ::
	$(Q)mmd -i $@.tmp ::/EFI ::/EFI/BOOT
	$(Q)mcopy -i $@.tmp $(EFI_APP) ::/EFI/BOOT/BOOTX64.EFI
	$(Q)mv $@.tmp $@

# ---- host side -----------------------------------------------------------------------------
$(BUILD)/host/%.o: %.c | $(BUILD)/pure.ok
	@mkdir -p $(dir $@)
	$(call say,HOSTCC,$<)
	$(Q)$(HOSTCC) $(HOST_CFLAGS) -MMD -MP -c $< -o $@

$(HOSTLIB): $(HOSTLIB_OBJS)
	@mkdir -p $(dir $@)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/%: tools/%.c $(HOSTLIB)
	@mkdir -p $(dir $@)
	$(call say,HOSTLD,$@)
	$(Q)$(HOSTCC) $(HOST_CFLAGS) $(CFLAGS_$*) -MMD -MP $< $(HOSTLIB) $(LDLIBS_$*) -o $@

# The nbdkit plugin (tools/nbdkit/): a shared object, so the engine is compiled into it again,
# position-independent; nbdkit's own symbols are resolved when it loads the plugin.
PLUGIN   := $(BUILD)/nbdkit-cowboot-plugin.so
PLUGIN_C := tools/nbdkit/cowboot-plugin.c $(PURE_C) tools/lib_filedev.c
tools: $(PLUGIN)
$(PLUGIN): $(PLUGIN_C) $(wildcard $(addsuffix /*.h,$(PURE_DIRS)) tools/lib_*.h) | $(BUILD)/pure.ok
	@mkdir -p $(dir $@)
	$(call say,PLUGIN,$@)
	$(Q)$(HOSTCC) $(HOST_CFLAGS) -fPIC -shared -pthread $(PLUGIN_C) -o $@

$(BUILD)/tests/%: tests/unit/%.c $(TESTLIB_OBJS) $(HOSTLIB)
	@mkdir -p $(dir $@)
	$(call say,HOSTLD,$@)
	$(Q)$(HOSTCC) $(HOST_CFLAGS) -MMD -MP $< $(TESTLIB_OBJS) $(HOSTLIB) -o $@

# The fuzzers share one instrumented build of the host library (compiled once, not per fuzzer).
FUZZLIB_OBJS := $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(HOSTLIB_C) $(TESTLIB_C))
FUZZLIB      := $(BUILD)/fuzzobj/libfuzz.a
# The checksum and the hash carry no structure to learn: built without coverage (still under the
# sanitizers), a fuzzer spends its runs on the parsers, not on tracing every byte a CRC reads.
FUZZ_COV := -fsanitize=fuzzer-no-link$(comma)
$(BUILD)/fuzzobj/lib/crc32c.o $(BUILD)/fuzzobj/lib/sha256.o: FUZZ_COV := -fsanitize=
$(BUILD)/fuzzobj/%.o: %.c | $(BUILD)/pure.ok
	@mkdir -p $(dir $@)
	$(call say,FUZZCC,$<)
	$(Q)$(CLANG) $(subst -fsanitize=fuzzer$(comma),$(FUZZ_COV),$(FUZZ_CFLAGS)) -MMD -MP -c $< -o $@

$(FUZZLIB): $(FUZZLIB_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZLIB)
	@mkdir -p $(dir $@)
	$(call say,FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(FUZZLIB) -o $@

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
