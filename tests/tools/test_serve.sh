#!/usr/bin/env bash
# cowtool serve and the nbdkit plugin driven as a user would: the partially rescued demo NTFS
# disk mounted read-write through nbdfuse + ntfs-3g, the changes read back from the cow with
# ntfs-3g's tools, holes, kill -9 during flushed writes, concurrent clients. The source is
# hashed before and after: it is never written.
set -u
B=$(realpath "${COWBOOT_BUILD:-build}")
ROOT=$(realpath "$(dirname "$0")/../..")
T=$(mktemp -d /tmp/cowboot-serve-XXXXXX)
SERVER=
cleanup() {
	fusermount -u "$T/vol" 2>/dev/null || fusermount3 -u "$T/vol" 2>/dev/null
	fusermount3 -u "$T/nbd" 2>/dev/null
	[ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
check() { if eval "$2"; then pass "$1"; else fail "$1" "$2"; fi; }
U="nbd+unix:///?socket=$T/sock"
# serve ARGS...: cowtool serve in the background on $T/sock; waits until it answers.
serve() {
	rm -f sock
	"$B/cowtool" serve "$@" -U "$T/sock" 2>>serve.log &
	SERVER=$!
	for _ in $(seq 200); do nbdinfo --size "$U" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}
stop() { kill -${1:-TERM} "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=; }
lcns() { ntfscluster -F "$1" "$2" 2>/dev/null | awk '/VCN.*LCN.*Length/ { on = 1; next } on && NF == 3 { print $2, $3 }'; }

FIRST=$(python3 - <<PY
import os, sys
sys.path.insert(0, "$ROOT/tests/qemu")
import mkdemo
r = os.urandom
print(mkdemo.ntfs_disk("disk.img", 64 << 20, {"docs/a.txt": r(50000), "docs/b.jpg": r(200000),
      "pics/d.png": r(80000), "top.bin": r(1 << 20), "small.txt": b"hi\n"}))
PY
)
START=$((FIRST * 512))
SIZE=$(stat -c %s disk.img)
PARTLEN=$(( (SIZE - START - 34 * 512) / 512 ))
dd if=disk.img of=part.img bs=512 skip="$FIRST" count=$PARTLEN status=none
HASH=$(sha256sum < disk.img)
read -r dlcn dlen < <(lcns /pics/d.png part.img | head -1)
DOFF=$((START + dlcn * 4096))
# A rescue of the used clusters (ntmap's domain: free space never tried) but d.png's data. New
# files land in the free space, so their writes are durable only once flushed (a first write
# over rescued sectors commits "written" before its data).
"$B/ntmap" disk.img > used.map
python3 - "$DOFF" $((dlen * 4096)) <<'PY' > partial.map
import sys
a, n = int(sys.argv[1]), int(sys.argv[2])
blocks = [(int(f[0], 0), int(f[1], 0), f[2]) for f in (l.split() for l in open("used.map")) if len(f) == 3 and f[1].startswith("0x")]
print("0x0 + 1")
for pos, size, st in blocks:
    for lo, hi, s in ((pos, min(pos + size, a), st), (max(pos, a), min(pos + size, a + n), "?"), (max(pos, a + n), pos + size, st)):
        if lo < hi:
            print(f"0x{lo:X} 0x{hi - lo:X} {s}")
PY
"$B/cowtool" format cow disk.img >/dev/null && "$B/cowtool" import-map cow partial.map --image disk.img >/dev/null
check "a cow of an NTFS disk with its used clusters rescued but d.png's" "[ $? = 0 ] && [ -n \"$dlcn\" ] && grep -q '^0x.* ?' partial.map"

out=$("$B/cowtool" serve 2>&1); rc=$?
check "serve without a cow: usage, exit 2" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'serve needs <cow>'"
out=$("$B/cowtool" serve cow -U s -p 1 2>&1); rc=$?
check "serve with both -U and -p: exit 2" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'not both'"
out=$("$B/cowtool" serve cow --holes=maybe 2>&1); rc=$?
check "serve --holes takes eio or zero" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'eio or zero'"
out=$(COWBOOT_NBDKIT_PLUGIN=/nonexistent.so "$B/cowtool" serve cow 2>&1); rc=$?
check "serve without its plugin says where it looked" "[ $rc = 2 ] && echo \"\$out\" | grep -q '/nonexistent.so'"

PORT=$((20000 + RANDOM % 30000))
"$B/cowtool" serve cow --readonly -p $PORT 2>/dev/null &
SERVER=$!
for _ in $(seq 100); do nbdinfo --size "nbd://localhost:$PORT" >/dev/null 2>&1 && break; sleep 0.05; done
check "serve -p PORT answers over TCP" "[ \"\$(nbdinfo --size nbd://localhost:$PORT 2>/dev/null)\" = $SIZE ]"
stop

# ---- the cow alone: holes are EIO ----------------------------------------------------------
serve cow; rc=$?
check "cowtool serve answers nbdinfo with the source's size" "[ $rc = 0 ] && [ \"\$(nbdinfo --size '$U')\" = $SIZE ]"
check "serve says what holes read as" "grep -q 'never rescued fail with EIO' serve.log"
out=$(qemu-io -r -f raw "$U" -c "read $DOFF 4096" 2>&1)
check "a never-rescued range reads EIO" "echo \"\$out\" | grep -q 'read failed: Input/output error'"
out=$(qemu-io -r -f raw "$U" -c "read 0 17408" 2>&1)
check "a rescued range (the GPT) reads" "echo \"\$out\" | grep -q 'read 17408/17408'"
out=$(qemu-io -f raw "$U" -c "write -P 0x5a $((DOFF + 100)) 200" 2>&1)
check "a partial-sector write into a hole is EIO (the rest of the sector is unknown)" "echo \"\$out\" | grep -q 'write failed: Input/output error'"

stop
rm -f serve.log
serve cow --holes=zero
out=$(qemu-io -r -f raw "$U" -c "read -P 0 $DOFF 4096" 2>&1)
check "--holes=zero: the never-rescued range reads as zeros" "echo \"\$out\" | grep -q 'read 4096/4096'"
check "--holes=zero is said loudly: at start and in the export's description" "grep -q 'WARNING: holes=zero' serve.log && grep -q 'read as ZEROS' serve.log && nbdinfo '$U' | grep -q 'never-rescued ranges read as ZEROS'"

# ---- with the source: holes read from it; identity; read-only --------------------------------
stop
serve cow disk.img --readonly
nbdcopy "$U" viewed.img; rc=$?
check "with the source, the never-rescued range reads the source's bytes" "[ $rc = 0 ] && cmp -s <(tail -c +$((DOFF + 1)) viewed.img | head -c $((dlen * 4096))) <(tail -c +$((DOFF + 1)) disk.img | head -c $((dlen * 4096)))"
out=$(qemu-io -f raw "$U" -c "write -P 1 0 512" 2>&1)
check "--readonly refuses writes" "echo \"\$out\" | grep -qi 'read-only\|write failed\|permission'"
stop
rm -f viewed.img
head -c $SIZE /dev/urandom > other.img
rm -f serve.log
serve cow other.img; rc=$?
check "a source that is not the cow's is refused, naming why" "[ $rc != 0 ] && grep -q 'contents differ' serve.log"
stop
rm -f other.img
check "the source image is still unchanged" "[ \"\$(sha256sum < disk.img)\" = \"$HASH\" ]"

# ---- read-write NTFS through nbdfuse + ntfs-3g -------------------------------------------------
# COWBOOT_TEST_NO_FUSE=1 takes the path of a machine without FUSE.
if [ -z "${COWBOOT_TEST_NO_FUSE:-}" ] && [ -c /dev/fuse ] && command -v nbdfuse >/dev/null && command -v ntfs-3g >/dev/null; then
	stop
	# The partition alone, for ntfs-3g (nbdkit's partition filter, after --).
	serve cow -- --filter=partition partition=1
	mkdir nbd vol
	nbdfuse -P nbdfuse.pid nbd "$U" 2>nbdfuse.err &
	for _ in $(seq 200); do [ -s nbdfuse.pid ] && break; sleep 0.05; done
	check "nbdfuse exposes the served partition (its GPT entry's size)" "[ \$(stat -c %s nbd/nbd 2>/dev/null) = $(( (SIZE / 512 - 33 - FIRST) * 512 )) ]"
	ntfs-3g nbd/nbd vol 2>ntfs3g.err; rc=$?
	check "ntfs-3g mounts it read-write" "[ $rc = 0 ] && mountpoint -q vol"
	head -c 300000 /dev/urandom > new.bin
	cp new.bin vol/new.bin && mkdir vol/made && printf 'made through the overlay\n' > vol/made/note.txt &&
		printf 'appended\n' >> vol/docs/a.txt && rm vol/top.bin && sync
	check "files created, modified and deleted on the mounted overlay" "[ $? = 0 ] && cmp -s vol/new.bin new.bin"
	cat vol/pics/d.png > /dev/null 2>d.err
	check "a file in the never-rescued range is EIO through the mount" "grep -q 'Input/output error' d.err"
	fusermount -u vol 2>/dev/null || umount vol
	# ntfs-3g syncs and closes its device after the unmount returns: nbd is busy until then.
	for _ in $(seq 200); do fusermount3 -u nbd 2>/dev/null && break; sleep 0.05; done
	for _ in $(seq 100); do [ -e /proc/$(cat nbdfuse.pid)/status ] || break; sleep 0.05; done
	check "unmounted" "! mountpoint -q vol && ! mountpoint -q nbd"
	# Unmounting flushed (ntfs-3g's fsync, an NBD flush): a kill -9 now must lose nothing.
	stop 9
	out=$("$B/cowtool" info cow)
	check "the cow holds written ranges (info lists them)" "echo \"\$out\" | grep -q 'written through the overlay' && ! echo \"\$out\" | grep -q 'written  *0 bytes'"
	check "cowtool map lists them as comments ddrescuelog accepts" "\"$B/cowtool\" map cow > map.txt && grep -q '^#written  0x' map.txt && ddrescuelog -t map.txt >/dev/null"
	"$B/cowtool" export cow merged.img >/dev/null 2>&1
	dd if=merged.img of=mpart.img bs=512 skip="$FIRST" count=$PARTLEN status=none
	out=$(ntfsls -R mpart.img 2>/dev/null | tr '\n' ' ')
	check "ntfsls on the export: new.bin and made/ there, top.bin gone" "echo \"\$out\" | grep -q 'new.bin' && echo \"\$out\" | grep -q 'note.txt' && ! echo \"\$out\" | grep -q 'top.bin'"
	check "ntfscat on the export: the new file's bytes" "cmp -s <(ntfscat mpart.img /new.bin 2>/dev/null) new.bin"
	check "ntfscat on the export: the appended line, the original bytes before it" "ntfscat mpart.img /docs/a.txt 2>/dev/null | tail -c 9 | grep -q appended && cmp -s <(ntfscat mpart.img /docs/a.txt 2>/dev/null | head -c 50000) <(ntfscat part.img /docs/a.txt 2>/dev/null)"
	check "ntfscat on the export: the note" "[ \"\$(ntfscat mpart.img /made/note.txt 2>/dev/null)\" = 'made through the overlay' ]"
	rm -f merged.img mpart.img
else
	echo "SKIP read-write NTFS mount through nbdfuse + ntfs-3g: no /dev/fuse, nbdfuse or ntfs-3g here"
	# Instead: the partition copied out with nbdcopy (holes as zeros), changed with ntfscp,
	# and copied back in through the plugin.
	stop
	serve cow --holes=zero -- --filter=partition partition=1
	nbdcopy "$U" via.img; rc=$?
	head -c 300000 /dev/urandom > new.bin
	ntfscp -f via.img new.bin /new.bin >/dev/null 2>&1 && nbdcopy --flush via.img "$U"; rc2=$?
	check "a file added with ntfscp, written back through the plugin with nbdcopy" "[ $rc = 0 ] && [ $rc2 = 0 ]"
	stop 9
	"$B/cowtool" export cow merged.img >/dev/null 2>&1
	dd if=merged.img of=mpart.img bs=512 skip="$FIRST" count=$PARTLEN status=none
	check "ntfscat on the export: the new file's bytes" "cmp -s <(ntfscat mpart.img /new.bin 2>/dev/null) new.bin"
	rm -f merged.img mpart.img via.img
fi
check "the source image is unchanged" "[ \"\$(sha256sum < disk.img)\" = \"$HASH\" ]"

# ---- kill -9 during a write workload with flushes ----------------------------------------------
# 8 MiB: the first half rescued, the rest never tried; 64 KiB blocks, each written twice with a
# pattern of its own (pass 1: i+1, pass 2: i+129), a flush after every fourth write.
head -c 8M /dev/urandom > k.img
printf '0x0 + 1\n0x0 0x400000 +\n0x400000 0x400000 ?\n' > k.map
NB=128
cmds=()
for pass in 1 2; do
	for i in $(seq 0 $((NB - 1))); do
		cmds+=(-c "write -P $((i + 1 + (pass - 1) * 128 & 255)) $((i * 65536)) 64k")
		[ $(( (i + 1) % 4 )) = 0 ] && cmds+=(-c flush)
	done
done
ok=1
for round in 1 2 3; do
	"$B/cowtool" format kc k.img --yes >/dev/null && "$B/cowtool" import-map kc k.map --image k.img >/dev/null
	serve kc k.img
	stdbuf -oL qemu-io -t writeback -f raw "$U" "${cmds[@]}" > qio.out 2>&1 &
	qio=$!
	# The kill lands in a different path each round: after 30 writes (first writes over rescued
	# sectors, each committing "written" first), 100 (into the never-tried half), 170 (pass 2:
	# over sectors already written).
	for _ in $(seq 400); do [ "$(grep -c '^wrote' qio.out)" -ge $((round * 70 - 40)) ] && break; sleep 0.01; done
	kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null; SERVER=
	wait $qio 2>/dev/null
	done_writes=$(grep -c '^wrote' qio.out)
	serve kc k.img
	nbdcopy "$U" k.after; rc=$?
	stop
	[ $rc = 0 ] || ok=0
	# The writes whose flush completed: those before the last flush that precedes the last
	# write that completed (qemu-io runs one command at a time).
	python3 - "$done_writes" "$NB" <<'PY' > verdict || ok=0
import sys
done, nb = int(sys.argv[1]), int(sys.argv[2])
src, got = open("k.img", "rb").read(), open("k.after", "rb").read()
flushed = (done - 1) // 4 * 4 if done else 0       # writes covered by a completed flush
bad = 0
for s in range(len(got) // 512):
    i = s * 512 // 65536
    sec, old = got[s * 512:(s + 1) * 512], src[s * 512:(s + 1) * 512]
    p1, p2 = bytes([i + 1]) * 512, bytes([(i + 129) & 255]) * 512
    w1, w2 = i, nb + i                                # the write indexes of this block's passes
    allowed = [p2] if w2 < flushed else [p1, p2] if w1 < flushed else [old, p1, p2]
    if sec not in allowed:
        bad += 1
print(f"done {done} flushed {flushed} bad {bad}")
sys.exit(1 if bad else 0)
PY
	echo "round $round: $(cat verdict)" >> rounds
done
check "kill -9 during flushed writes, 3 rounds: every flushed write there, every sector old or written data ($(tr '\n' ';' < rounds))" "[ $ok = 1 ]"
check "the killed runs were in the middle of the workload" "grep -qv 'done 0 \|done 256 ' rounds"
check "the source of the kill test is unchanged" "cmp -s <(head -c 8M k.img) k.img"

# ---- concurrent clients ----------------------------------------------------------------------
"$B/cowtool" format kc k.img --yes >/dev/null && "$B/cowtool" import-map kc k.map --image k.img >/dev/null
serve kc k.img
pids=()
for c in 0 1 2; do
	args=()
	for i in $(seq 0 15); do args+=(-c "write -P $((c * 16 + i + 1)) $(( (c * 40 + i) * 65536 )) 64k"); done
	qemu-io -t writeback -f raw "$U" "${args[@]}" -c flush >/dev/null 2>&1 &
	pids+=($!)
done
nbdcopy "$U" during.img & pids+=($!)
crc=0; for p in "${pids[@]}"; do wait "$p" || crc=1; done
nbdcopy "$U" conc.img; rc=$?
stop
python3 - <<'PY' > conc.verdict; vrc=$?
src, got = open("k.img", "rb").read(), open("conc.img", "rb").read()
want = bytearray(src)
for c in range(3):
    for i in range(16):
        o = (c * 40 + i) * 65536
        want[o:o + 65536] = bytes([c * 16 + i + 1]) * 65536
print("equal" if bytes(want) == got else "differ")
PY
check "three writers and a reader at once: each writer's blocks and the source elsewhere" "[ $crc = 0 ] && [ $rc = 0 ] && [ $vrc = 0 ] && grep -q equal conc.verdict"
rm -f k.after conc.img during.img
