#!/usr/bin/env bash
# ntmap, ntgrep, ntfind-bad and ntfuse driven as a user would, on a GPT disk with an NTFS volume
# (mkntfs, filled through an ntfs-3g mount), checked against ntfs-3g's own tools.
set -u
B=$(realpath "${COWBOOT_BUILD:-build}")
ROOT=$(realpath "$(dirname "$0")/../..")
T=$(mktemp -d /tmp/cowboot-ntfs-tools-XXXXXX)
trap 'fusermount3 -u "$T/mnt" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T"
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
check() { if eval "$2"; then pass "$1"; else fail "$1" "$2"; fi; }
# Sum of the sizes of a mapfile's blocks with a given status.
total() { python3 -c 'import sys
print(sum(int(l.split()[1], 0) for l in open(sys.argv[1]) if l.startswith("0x") and len(l.split()) == 3 and l.split()[2] == sys.argv[2]))' "$1" "$2"; }
# Whether a mapfile's '+' blocks cover byte $2.
covers() { python3 -c 'import sys
b = int(sys.argv[2])
sys.exit(not any(int(f[0], 0) <= b < int(f[0], 0) + int(f[1], 0) for f in (l.split() for l in open(sys.argv[1]) if l.startswith("0x")) if len(f) == 3 and f[2] == "+"))' "$1" "$2"; }

FIRST=$(python3 - <<PY
import os, sys
sys.path.insert(0, "$ROOT/tests/qemu")
import mkdemo
r = os.urandom
print(mkdemo.ntfs_disk("disk.img", 64 << 20, {"docs/a.txt": r(50000), "docs/b.jpg": r(200000),
      "pics/c.JPG": r(120000), "pics/d.png": r(80000), "top.bin": r(1 << 20), "small.txt": b"hi\n"}))
PY
)
check "a GPT disk with an NTFS volume (mkdemo.ntfs_disk)" "[ -n \"$FIRST\" ] && [ -s disk.img ]"
START=$((FIRST * 512))
SIZE=$(stat -c %s disk.img)
# The partition alone, for ntfs-3g's tools (they take no offset).
dd if=disk.img of=part.img bs=512 skip="$FIRST" count=$(( (SIZE - START - 34 * 512) / 512 )) status=none
lcns() { ntfscluster -F "$1" part.img 2>/dev/null | awk '/VCN.*LCN.*Length/ { on = 1; next } on && NF == 3 { print $2, $3 }'; }

# --help and usage errors.
"$B/ntmap" --help | grep -q 'domain mapfile'; check "ntmap --help" "[ $? = 0 ]"
"$B/ntgrep" --help | grep -q 'glob'; check "ntgrep --help" "[ $? = 0 ]"
"$B/ntfind-bad" --help | grep -q 'non-tried'; check "ntfind-bad --help" "[ $? = 0 ]"
"$B/ntmap" 2>/dev/null; check "ntmap without arguments: exit 2" "[ $? = 2 ]"
"$B/ntgrep" disk.img 2>/dev/null; check "ntgrep without a glob: exit 2" "[ $? = 2 ]"
out=$("$B/ntgrep" disk.img '*.jpg' --map 2>&1); rc=$?
check "ntgrep: a missing option value is named" "[ $rc = 2 ] && echo \"\$out\" | grep -q '^ntgrep: --map needs a value'"
if [ -x "$B/ntfuse" ]; then
	out=$("$B/ntfuse" --part 0 disk.img mnt 2>&1); rc=$?
	check "ntfuse: --part is a number within its range" "[ $rc = 2 ] && echo \"\$out\" | grep -q '^ntfuse: --part 0: not within 1..999'"
fi
out=$("$B/ntmap" nonexistent.img 2>&1); rc=$?
check "ntmap on a missing file: exit 2 and why" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'cannot open'"
out=$("$B/ntfind-bad" disk.img 2>&1); rc=$?
check "ntfind-bad on an image without a mapfile: exit 2 and why" "[ $rc = 2 ] && echo \"\$out\" | grep -q 'mapfile'"

# ntmap: the used clusters (ntfsinfo), the backup boot sector and the GPT's two tables.
"$B/ntmap" disk.img > dom; rc=$?
check "ntmap: exit 0 and ddrescuelog -t accepts the domain" "[ $rc = 0 ] && ddrescuelog -t dom >/dev/null 2>&1"
used=$(ntfsinfo -m part.img 2>/dev/null | awk -F': ' '/Volume Size in Clusters/ { t = $2 } /Free Clusters/ { split($2, f, " "); print (t - f[1]) * 4096 }')
want=$((used + 512 + 34 * 512 + 33 * 512))
got=$(total dom +)
check "ntmap: '+' is the used clusters + backup boot sector + GPT tables ($got = $want)" "[ \"$got\" = \"$want\" ]"

# ntgrep on the image.
out=$("$B/ntgrep" disk.img '*.jpg'); rc=$?
check "ntgrep *.jpg: both jpgs, case-insensitive" "[ $rc = 0 ] && [ \$(echo \"\$out\" | grep -c '^/') = 2 ] && echo \"\$out\" | grep -q '^/docs/b.jpg	200000 bytes' && echo \"\$out\" | grep -q '^/pics/c.JPG	120000 bytes'"
ok=1
while read -r lcn len; do
	echo "$out" | grep -q "extent      $(printf '0x%X +0x%X' $((START + lcn * 4096)) $((len * 4096)))" || ok=0
done < <(lcns /docs/b.jpg)
check "ntgrep: b.jpg's extents equal ntfscluster's" "[ $ok = 1 ] && [ -n \"\$(lcns /docs/b.jpg)\" ]"
"$B/ntgrep" disk.img '/pics/*' | grep -c '^/' > n; check "ntgrep /pics/*: two files" "[ \$(cat n) = 2 ]"
"$B/ntgrep" disk.img '*.nothing' >/dev/null; check "ntgrep: nothing matched is exit 1" "[ $? = 1 ]"

# A cow of the disk with a partial rescue: b.jpg's first cluster bad, d.png never tried, the
# MFT record of c.JPG never tried (its file can then not be named).
truncate -s 96M cow
"$B/cowtool" format cow disk.img --yes >/dev/null 2>&1; check "cowtool format" "[ $? = 0 ]"
read -r blcn blen < <(lcns /docs/b.jpg | head -1)
read -r dlcn dlen < <(lcns /pics/d.png | head -1)
mftlcn=$(ntfsinfo -m part.img 2>/dev/null | awk -F': ' '/LCN of Data Attribute for FILE_MFT/ { print $2 }')
cino=$(ntfsls -i -p /pics part.img 2>/dev/null | awk '$2 == "c.JPG" { print $1 }')
mkmap() { python3 - "$SIZE" "$@" <<'PY'
import sys
size = int(sys.argv[1]); a = sys.argv[2:]
holes = sorted((int(a[i]), int(a[i + 1]), a[i + 2]) for i in range(0, len(a), 3))
print("0x0 + 1\n")
pos = 0
for off, n, st in holes:
    if off > pos: print(f"0x{pos:X} 0x{off - pos:X} +")
    print(f"0x{off:X} 0x{n:X} {st}"); pos = off + n
if pos < size: print(f"0x{pos:X} 0x{size - pos:X} +")
PY
}
mkmap $((START + blcn * 4096)) 4096 - $((START + dlcn * 4096)) $((dlen * 4096)) '?' \
	$((START + mftlcn * 4096 + cino * 1024)) 1024 '?' > partial.map
check "the partial mapfile (b.jpg bad, d.png and c.JPG's record non-tried)" "[ -n \"$blcn\" ] && [ -n \"$dlcn\" ] && [ -n \"$cino\" ] && ddrescuelog -t partial.map >/dev/null 2>&1"
"$B/cowtool" import-map cow partial.map --image disk.img >/dev/null 2>&1; check "cowtool import-map" "[ $? = 0 ]"

out=$("$B/ntfind-bad" cow 2>/dev/null); rc=$?
files=$(echo "$out" | grep '^/' | cut -f1 | sort | tr '\n' ' ')
# $MFT itself holds c.JPG's non-tried record, so it is named too.
check "ntfind-bad cow: exactly \$MFT, b.jpg and d.png ($files)" "[ $rc = 1 ] && [ \"\$files\" = '/\$MFT /docs/b.jpg /pics/d.png ' ]"
check "ntfind-bad cow: b.jpg has 4096 bad bytes, d.png $((dlen * 4096)) non-tried" "echo \"\$out\" | grep -q '^/docs/b.jpg	200000 bytes	bad 4096	non-tried 0' && echo \"\$out\" | grep -q \"^/pics/d.png	80000 bytes	bad 0	non-tried $((dlen * 4096))\""
check "ntfind-bad cow: c.JPG's MFT record $cino is named as damaged" "echo \"\$out\" | grep -q \"^damaged: MFT record $cino:\""
# A second cow where a cluster of the root's index is bad as well: the root is named.
rlcn=$(ntfscluster -F / part.img 2>/dev/null | awk '/0xa0/ { on = 1; next } on && NF == 3 && $1 ~ /^[0-9]+$/ { print $2; exit }')
mkmap $((START + blcn * 4096)) 4096 - $((START + dlcn * 4096)) $((dlen * 4096)) '?' \
	$((START + mftlcn * 4096 + cino * 1024)) 1024 '?' $((START + ${rlcn:-0} * 4096)) 4096 - > partial2.map
truncate -s 96M cow2
"$B/cowtool" format cow2 disk.img --yes >/dev/null 2>&1 && "$B/cowtool" import-map cow2 partial2.map --image disk.img >/dev/null 2>&1
out3=$("$B/ntfind-bad" cow2 2>/dev/null); rc=$?
check "ntfind-bad: a bad cluster of the root's index names the root directory" "[ -n \"$rlcn\" ] && [ $rc = 1 ] && echo \"\$out3\" | grep -q '^/	directory index	bad 4096	non-tried 0' && [ \$(echo \"\$out3\" | grep -c 'directory index') = 1 ]"
check "ntfind-bad: the same files as without it" "[ \"\$(echo \"\$out3\" | grep -v 'directory index')\" = \"\$out\" ]"
out2=$("$B/ntfind-bad" disk.img partial.map 2>/dev/null); rc=$?
[ -n "${VERBOSE:-}" ] && diff <(echo "$out") <(echo "$out2")
check "ntfind-bad image + mapfile: the same findings" "[ $rc = 1 ] && [ \"\$out2\" = \"\$out\" ]"
printf '0x0 + 1\n0x0 0x%X +\n' "$SIZE" > full.map
"$B/ntfind-bad" disk.img full.map >/dev/null 2>&1; check "ntfind-bad with everything rescued: exit 0" "[ $? = 0 ]"

# ntgrep on the cow with its source: the states of each file; --domain.
out=$("$B/ntgrep" cow disk.img '*.png'); rc=$?
check "ntgrep cow source *.png: d.png non-tried $((dlen * 4096))" "[ $rc = 0 ] && echo \"\$out\" | grep -q \"^/pics/d.png	80000 bytes	1 extents	rescued 0	bad 0	non-tried $((dlen * 4096))\""
"$B/ntgrep" --domain cow disk.img '*.png' > pngdom; rc=$?
check "ntgrep --domain: ddrescuelog -t accepts it" "[ $rc = 0 ] && ddrescuelog -t pngdom >/dev/null 2>&1"
check "ntgrep --domain: d.png's data is in it, b.jpg's is not" "covers pngdom $((START + dlcn * 4096)) && ! covers pngdom $((START + blcn * 4096))"
"$B/ntmap" cow disk.img > cowdom; rc=$?
check "ntmap cow source: the same domain as the image's" "[ $rc = 0 ] && diff <(grep '^0x' dom) <(grep '^0x' cowdom) >/dev/null"

# ntfuse: the cow alone mounted read-only; what was rescued reads back, the rest is EIO.
if [ -x "$B/ntfuse" ]; then
	mkdir mnt
	"$B/ntfuse" cow mnt 2>ntfuse.err; rc=$?
	check "ntfuse mounts the cow" "[ $rc = 0 ] && mountpoint -q mnt"
	ntfscat part.img /docs/a.txt > a.want 2>/dev/null
	ntfscat part.img /docs/b.jpg > b.want 2>/dev/null
	check "ntfuse: ls shows the files, c.JPG too (from the index)" "[ \"\$(ls mnt/pics | tr '\n' ' ')\" = 'c.JPG d.png ' ] && [ \"\$(ls mnt/docs | tr '\n' ' ')\" = 'a.txt b.jpg ' ]"
	check "ntfuse: a rescued file reads back equal to ntfscat's" "cmp -s mnt/docs/a.txt a.want && [ \$(stat -c %s mnt/docs/a.txt) = 50000 ]"
	out=$(cat mnt/pics/d.png 2>&1 >/dev/null); rc=$?
	check "ntfuse: a non-tried file is EIO, not zeros" "[ $rc != 0 ] && echo \"\$out\" | grep -q 'Input/output error'"
	cat mnt/docs/b.jpg > b.got 2>/dev/null; rc=$?
	check "ntfuse: a file with a bad first cluster fails at once" "[ $rc != 0 ] && [ ! -s b.got ]"
	dd if=mnt/docs/b.jpg of=b.tail bs=4096 skip=1 status=none 2>/dev/null
	check "ntfuse: past its bad cluster the file reads back right" "cmp -s b.tail <(tail -c +4097 b.want) && [ -s b.tail ]"
	(echo x > mnt/new) 2>/dev/null; check "ntfuse: read-only" "[ $? != 0 ]"
	fusermount3 -u mnt; check "ntfuse unmounts" "[ $? = 0 ] && ! mountpoint -q mnt"
fi
