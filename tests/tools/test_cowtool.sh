#!/usr/bin/env bash
# cowtool driven as a user would, against GNU ddrescue 1.27 as the reference.
set -u
C=$(realpath "${COWBOOT_BUILD:-build}/cowtool")
T=$(mktemp -d /tmp/cowboot-cowtool-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
check() { if eval "$2"; then pass "$1"; else fail "$1" "$2"; fi; }

head -c 3145728 /dev/urandom > src.img
ddrescue -f -s 1Mi -i 512Ki src.img img map >/dev/null 2>&1
ddrescue -f -s 64Ki -i 2Mi src.img img map >/dev/null 2>&1
check "GNU ddrescue made a partial run" "[ -s map ]"

out=$("$C" format cow src.img 2>&1); rc=$?
check "format creates a new cow file" "[ $rc = 0 ] && [ -s cow ]"
out=$("$C" format cow src.img 2>&1); rc=$?
check "format refuses an existing file without --yes" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'add --yes'"
truncate -s 2M small
out=$("$C" format small src.img --yes 2>&1); rc=$?
check "format refuses a cow that is too small, with sizes" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'too small.*needs'"
out=$("$C" import-map cow map 2>&1); rc=$?
check "import-map without --image names what is missing" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'must come from --image'"
printf '0 +\n0 0x200 +\n0x400 0x200 -\n' > broken.map
out=$("$C" import-map cow broken.map --image img 2>&1); rc=$?
check "import-map rejects a malformed mapfile with its line" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'line 3'"
out=$("$C" import-map cow map --image img 2>&1); rc=$?
check "import-map takes over a ddrescue run" "[ $rc = 0 ]"
"$C" map cow > ours
check "cowtool map passes ddrescuelog -t" "grep -q '^0x' ours && ddrescuelog -t ours >/dev/null 2>&1"
check "with the same totals as ddrescue's own mapfile" "diff <(ddrescuelog -t map | grep -v 'current pos') <(ddrescuelog -t ours | grep -v 'current pos') >/dev/null"
"$C" export cow src.img full >/dev/null 2>&1
check "export with the source gives the source back" "cmp -s full src.img"
"$C" export cow part --fill DEADBEEF >/dev/null 2>&1
ok=1; nfin=0; nfill=0
while read -r pos size st; do
	case "$pos" in \#*|"") continue ;; esac
	case "${size:-}" in 0x*) ;; *) continue ;; esac
	p=$((pos)); s=$((size))
	if [ "$st" = "+" ]; then
		nfin=$((nfin + 1))
		cmp -s <(tail -c +$((p + 1)) part | head -c $s) <(tail -c +$((p + 1)) src.img | head -c $s) || ok=0
	else
		nfill=$((nfill + 1))
		[ "$(tail -c +$((p + 1)) part | head -c 4 | od -An -tx1 | tr -d ' ')" = deadbeef ] || ok=0
	fi
done < ours
check "export: finished ranges equal the source" "[ $ok = 1 ] && [ $nfin = 2 ]"
check "export: non-tried ranges carry the fill pattern" "[ $ok = 1 ] && [ $nfill = 3 ]"
shm=/dev/shm/cowtool-test-$$.img
if [ -w /dev/shm ]; then
	"$C" export cow src.img "$shm" >/dev/null 2>&1
	check "export to a file system without direct I/O (tmpfs) gives the source back" "cmp -s $shm src.img"
	rm -f "$shm"
fi
out=$("$C" export cow src.img /dev/full 2>&1); rc=$?
check "export to a full device fails, saying so" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'write failed: No space left'"
blocks=$(stat -c %b full)
"$C" export cow holes >/dev/null 2>&1
check "export without data is sparse" "[ \$(stat -c %b holes) -lt $blocks ] && [ \$(stat -c %s holes) = 3145728 ]"
# 20 MiB with a zero 4 KiB block in every 8 KiB: more than one of export's 16 MiB chunks.
python3 -c "
import os
b = bytearray(os.urandom(20 << 20))
for i in range(0, len(b), 8192): b[i:i + 4096] = bytes(4096)
open('z.img', 'wb').write(b)"
"$C" format zc z.img >/dev/null
printf '0 +\n0 0x100000 +\n0x100000 0xF00000 ?\n0x1000000 0x400000 +\n' > z.map
"$C" import-map zc z.map --image z.img >/dev/null
"$C" export zc z.img zo >/dev/null 2>&1
cp --sparse=always z.img zcp
check "export of cow and source across chunks gives the source back" "cmp -s zo z.img"
check "export leaves zero 4 KiB blocks as holes, as cp --sparse=always does" "[ \$(stat -c %b zo) -le \$((\$(stat -c %b zcp) * 101 / 100)) ] && [ \$(stat -c %b zo) -lt \$((\$(stat -c %b z.img) * 6 / 10)) ]"
# An odd-length pattern (it does not divide a sector) over a range that spans a chunk edge.
printf '0 +\n0 0x100000 +\n0x100000 0x1000200 ?\n0x1100200 0x2FFE00 +\n' > z2.map
"$C" format zc2 z.img >/dev/null
"$C" import-map zc2 z2.map --image z.img >/dev/null
"$C" export zc2 zf --fill ABCDEF >/dev/null 2>&1
python3 -c "
b = bytearray(open('z.img', 'rb').read())
p = bytes.fromhex('ABCDEF')
for x in range(0x100000, 0x1100200): b[x] = p[x % 3]
open('zexp', 'wb').write(b)"
check "the fill pattern's phase follows the byte offset, across chunks" "cmp -s zf zexp"
rm -f z.img zo zcp zc zc2 zf zexp
# The cow itself fails: qemu-storage-daemon exports it through FUSE with blkdebug making the
# sector that holds source byte 1 MiB (rescued by the run above) unreadable.
data=$("$C" info cow | sed -n 's/.*data at \([0-9]*\).*/\1/p')
printf '[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "5"\nsector = "%d"\nonce = "off"\n' \
	$(((data + 1048576) / 512)) > blkdebug.conf
: > fcow
qemu-storage-daemon --blockdev "driver=blkdebug,node-name=dbg,config=$T/blkdebug.conf,image.driver=file,image.filename=$T/cow" \
	--blockdev driver=raw,node-name=top,file=dbg \
	--export type=fuse,id=e0,node-name=top,mountpoint="$T/fcow",writable=off >/dev/null 2>&1 &
qsd=$!
for _ in $(seq 100); do [ -s fcow ] && break; sleep 0.05; done
out=$("$C" export fcow src.img unreadable 2>&1); rc=$?
check "export of a cow with an unreadable sector fails, naming the source byte it holds" \
	"[ $rc = 2 ] && echo \"\$out\" | grep -q \"reading the cow's copy in fcow at byte 1048576 of the source: media error\""
kill $qsd; wait $qsd 2>/dev/null
rm -f unreadable fcow blkdebug.conf
cp cow cow.keep
out=$("$C" export cow src.img cow 2>&1); rc=$?
check "export refuses to write over the cow itself" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'is the cow itself' && cmp -s cow cow.keep"
out=$("$C" export cow src.img ./src.img 2>&1); rc=$?
check "or over the source" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'is the source itself' && cmp -s full src.img"
rm -f cow.keep
head -c 3145728 /dev/urandom > other.img
out=$("$C" export cow other.img x 2>&1); rc=$?
check "a different source is refused, naming the field" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'contents differ'"
out=$("$C" check cow); rc=$?
check "check passes a good cow" "[ $rc = 0 ]"
check "check describes each superblock and the map each opens" "[ \$(echo \"\$out\" | grep -c 'superblock [AB] (byte [0-9]*): valid, version 3') = 2 ] && echo \"\$out\" | grep -q 'the newest superblock . opens (map root at slot'"
# The map root the newest superblock names is damaged: check names the page and says the older state opens.
cp cow damaged
rootb=$(echo "$out" | sed -n 's/.*the newest superblock . opens (map root at slot [0-9]*, byte \([0-9]*\);.*/\1/p')
printf 'xx' | dd of=damaged bs=1 seek=$((rootb + 100)) conv=notrunc status=none
out=$("$C" check damaged 2>&1); rc=$?
check "a damaged map root: check exits 1, names the page and what still opens" "[ $rc = 1 ] && echo \"\$out\" | grep -q 'map root at slot [0-9]* (byte $rootb) has a bad checksum' && echo \"\$out\" | grep -q 'opens from the older one'"
# A map page both superblocks name is damaged: nothing opens; check names the page, the sectors
# whose map is lost with it, and what the intact pages still say.
cp cow shared
"$C" reset shared '*' >/dev/null   # changes nothing: both superblocks now name the same pages
hit=0
for off in $(python3 -c "
d = open('shared', 'rb').read(8 << 20)
print(' '.join(str(o) for o in range(8192, len(d) - 4096, 4096) if d[o:o + 4] == b'CMLF'))"); do
	cp shared damaged
	printf 'zz' | dd of=damaged bs=1 seek=$((off + 300)) conv=notrunc status=none
	out=$("$C" check damaged 2>&1); rc=$?
	if [ $rc = 1 ] && echo "$out" | grep -q 'lost with it'; then hit=1; break; fi
done
rm -f shared
check "a damaged map page both superblocks name: check exits 1, names it and what is lost and salvageable" "[ $hit = 1 ] && echo \"\$out\" | grep -q 'map page at slot [0-9]* (byte $off) has a bad checksum' && echo \"\$out\" | grep -q 'the map of sectors [0-9]* to [0-9]* is lost with it' && echo \"\$out\" | grep -q 'map pages are intact'"
# A cow with a log: the first import's ~24,000 extents are written as pages, the second's
# scattered changes (some inside every page) mostly go into the log. A map page both
# superblocks name is damaged: check's salvage applies the log over the intact pages, and its
# totals must be the true map's outside the sectors it says are still unknown.
truncate -s 128M lsrc.img
python3 -c "
import random
random.seed(7)
S = (128 << 20) // 512
def write(name, areas):
    with open(name, 'w') as f:
        f.write('# Mapfile\n0x0 ?  1\n')
        for p, n, st in areas: f.write('0x%X 0x%X %s\n' % (p * 512, n * 512, st))
a, p, i = [], 0, 0
while p < S:
    n = min(random.randint(1, 20), S - p)
    a.append((p, n, '-/?'[i % 3])); p += n; i += 1
write('l1.map', a)
b, p = [], 0
for k in range(400):
    s = k * (S // 400) + random.randint(0, S // 400 - 64)
    n = random.randint(1, 48)
    if s > p: b.append((p, s - p, '?'))
    b.append((s, n, '+-'[k % 2])); p = s + n
b.append((p, S - p, '?'))
write('l2.map', b)"
"$C" format lcow lsrc.img >/dev/null && "$C" import-map lcow l1.map >/dev/null &&
	"$C" import-map lcow l2.map --image lsrc.img >/dev/null && "$C" reset lcow '*' >/dev/null
out=$("$C" check lcow 2>&1); rc=$?
check "a cow whose map pages lie under a log of changes" "[ $rc = 0 ] && echo \"\$out\" | grep -q 'pages; log of [1-9][0-9]* changes)'"
"$C" map lcow > ltruth.map
# The leaf whose range holds the most logged changes, and a log page, from the newest superblock.
read -r leaf logpage <<<"$(python3 -c "
import struct
d = open('lcow', 'rb').read(64 << 20)
sb = max((struct.unpack_from('<Q', d, o + 40)[0], o) for o in (0, 4096))[1]
root, = struct.unpack_from('<Q', d, sb + 88); lslot, = struct.unpack_from('<I', d, sb + 368)
pg = lambda s: 8192 + s * 4096
ents = lambda s: [struct.unpack_from('<I', d, pg(s) + 32 + 8 * i)[0] for i in range(struct.unpack_from('<I', d, pg(s) + 8)[0])]
leaves = [l for g in ents(root) for l in ents(g)]
firsts = [struct.unpack_from('<Q', d, pg(l) + 24)[0] for l in leaves] + [1 << 62]
logs = ents(lslot)
starts = [struct.unpack_from('<Q', d, pg(l) + 32 + 16 * j)[0] for l in logs for j in range(struct.unpack_from('<I', d, pg(l) + 8)[0])]
best = max(range(len(leaves)), key=lambda k: sum(firsts[k] <= s < firsts[k + 1] for s in starts))
print(pg(leaves[best]), pg(logs[0]))")"
cp lcow damaged
printf 'zz' | dd of=damaged bs=1 seek=$((leaf + 300)) conv=notrunc status=none
out=$("$C" check damaged 2>&1); rc=$?
verdict=$(echo "$out" | python3 -c "
import re, sys
out = sys.stdin.read()
unk = [(int(a), int(b)) for a, b in re.findall(r'still unknown: the state of sectors (\d+) to (\d+)', out)]
m = re.search(r'with the log applied, the state of (\d+) of the (\d+) sectors lost', out)
t = re.search(r'call (\d+) sectors finished, (\d+) bad, (\d+) non-tried and (\d+) written', out)
if not (m and t and unk): print('no salvage figures'); sys.exit()
tot = {'+': 0, '-': 0, '?': 0}
for line in open('ltruth.map'):
    f = line.split()
    if len(f) != 3 or not f[0].startswith('0x') or not f[1].startswith('0x'): continue
    s, e = int(f[0], 16) // 512, (int(f[0], 16) + int(f[1], 16)) // 512
    n = e - s - sum(max(0, min(e, b) - max(s, a)) for a, b in unk)
    if f[2] in tot: tot[f[2]] += n
got = {'+': int(t[1]), '-': int(t[2]), '?': int(t[3])}
if got != tot: print('salvage says %s, the true map outside the unknown sectors %s' % (got, tot))
elif not 0 < int(m[1]) < int(m[2]): print('the log gave nothing of the lost sectors: %s of %s still unknown' % (m[1], m[2]))
else: print('ok %s %s' % (m[1], m[2]))")
check "a damaged map page under a log: check names it, applies the log's changes and its totals are the truth's ($verdict)" \
	"[ $rc = 1 ] && echo \"\$out\" | grep -q 'map page at slot [0-9]* (byte $leaf) has a bad checksum' && echo \"\$out\" | grep -q 'the log: all [0-9]* pages intact, their [0-9]* changes applied' && [ \"\${verdict%% *}\" = ok ]"
printf 'zz' | dd of=damaged bs=1 seek=$((logpage + 300)) conv=notrunc status=none
out=$("$C" check damaged 2>&1); rc=$?
check "and with a log page damaged too: it names the page and says its changes are not applied" \
	"[ $rc = 1 ] && echo \"\$out\" | grep -q 'log page at slot [0-9]* (byte $logpage) has a bad checksum: its changes are not applied' && echo \"\$out\" | grep -q 'the log: [0-9]* of [0-9]* pages intact'"
rm -f lsrc.img lcow damaged l1.map l2.map ltruth.map
out=$("$C" info cow)
check "info shows identity, geometry and totals" "echo \"\$out\" | grep -q 'source: 3145728 bytes' && echo \"\$out\" | grep -q 'rescued  *1114112 bytes'"
printf 'x' | dd of=cow bs=1 seek=40 conv=notrunc status=none
check "a corrupt superblock A falls back to B" "\"$C\" check cow >/dev/null"
printf 'x' | dd of=cow bs=1 seek=4136 conv=notrunc status=none
out=$("$C" check cow 2>&1); rc=$?
check "two corrupt superblocks: check exits 1 with the reason" "[ $rc = 1 ] && echo \"\$out\" | grep -q 'no valid superblock'"
check "and finds the newest map root, which gives the layout and what can be salvaged" "echo \"\$out\" | grep -q 'the newest map root (slot [0-9]*, commit [0-9]*) gives the layout' && echo \"\$out\" | grep -q 'can still be recovered'"
# A dead head's mapfile: 3,000,000 areas over an 8 TiB source (sparse files), imported and
# printed back: ddrescuelog -t must give the same totals; info and check read the big map.
awk 'BEGIN { srand(5); n = 3000000; size = 8 * 2^40; step = int(size / n / 512); pos = 0; st = "?-/-*-"
	print "# Mapfile. Created by GNU ddrescue version 1.27"; print "0x00000000     ?               1"
	for (i = 0; i < n; i++) {
		len = (i == n - 1) ? size - pos : (1 + int(rand() * (2 * step - 1))) * 512
		if (i < n - 1 && pos + len > size - (n - i - 1) * 512) len = 512
		printf "%.0f  %.0f  %s\n", pos, len, substr(st, i % 6 + 1, 1); pos += len } }' > big.map
truncate -s 8T big.img
"$C" format bigcow big.img >/dev/null 2>&1
out=$("$C" import-map bigcow big.map 2>&1); rc=$?
check "import-map takes a 3,000,000-area mapfile of an 8 TiB source" "[ $rc = 0 ]"
"$C" map bigcow > big.ours
check "and cowtool map gives it back with the same totals (ddrescuelog -t)" "ddrescuelog -t big.map | grep -q 'in 3000000 area' && diff <(ddrescuelog -t big.map | grep -v 'current pos') <(ddrescuelog -t big.ours | grep -v 'current pos') >/dev/null"
out=$("$C" check bigcow 2>&1); rc=$?
check "check passes the 3,000,000-extent cow" "[ $rc = 0 ] && echo \"\$out\" | grep -q 'opens (map root at slot [0-9]*, byte [0-9]*; [0-9]* pages; log of [0-9]* changes): 3000000 extents'"
out=$("$C" info bigcow 2>&1)
check "info shows its map and room for 16 M extents" "echo \"\$out\" | grep -q 'map: 3000000 extents of at most 16777216' && echo \"\$out\" | grep -q 'version 3'"
rm -f big.img bigcow big.map big.ours
out=$("$C" info src.img 2>&1); rc=$?
check "a file that is not a cow is named as such" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'not a cow partition'"
"$C" format cow2 src.img >/dev/null
printf '0 -\n0 0x100000 -\n0x100000 0x100000 /\n0x200000 0x100000 *\n' > bad.map
"$C" import-map cow2 bad.map >/dev/null 2>&1
out=$("$C" reset cow2); rc=$?
"$C" map cow2 > after
check "reset turns bad and non-scraped back to non-tried" "[ $rc = 0 ] && grep -q '^0x00000000  0x00200000  ?' after && grep -q '0x00200000  0x00100000  \*' after"
out=$("$C" frob 2>&1); rc=$?
check "an unknown command prints the usage" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'usage: cowtool'"
check "--help exits 0" "\"$C\" --help >/dev/null"

# Options (getopt_long, sizes through lib/args): both spellings, anywhere; a bad one is named.
out=$("$C" format --unit=64k --yes cow3 src.img 2>&1); rc=$?
check "format --unit=64k before the files" "[ $rc = 0 ] && \"$C\" info cow3 | grep -q 'unit 65536,'"
out=$("$C" format cow3 src.img --unit 1x --yes 2>&1); rc=$?
check "a bad size is named with the syntax" "[ $rc = 2 ] && echo \"\$out\" | grep -q \"^cowtool format: --unit 1x: not a size\""
out=$("$C" format cow3 src.img --unit 2>&1); rc=$?
check "a missing value is named" "[ $rc = 2 ] && echo \"\$out\" | grep -q '^cowtool format: --unit needs a value'"
out=$("$C" export cow3 x --colour 2>&1); rc=$?
check "an unknown option is named" "[ $rc = 2 ] && echo \"\$out\" | grep -q \"^cowtool export: unknown option '--colour'\""
out=$("$C" export cow3 x --fill=12345 2>&1); rc=$?
check "an odd --fill is refused" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'fill 12345: 1 to 64 bytes as hex digits'"
out=$("$C" reset cow3 -/ 2>&1); rc=$?
check "reset's TYPES may begin with '-'" "[ $rc = 0 ]"
check "each command takes --help" "\"$C\" export --help | grep -q 'usage: cowtool' && \"$C\" reset --help >/dev/null && \"$C\" serve --help >/dev/null"
