#!/usr/bin/env python3
"""`wipe` as a user runs it, in one boot: zero, a pattern and random+verify checked byte for byte
on the host; a partition wipe touching only its partition; refusals (no --yes, bad patterns, the
boot disk, an open overlay's source and its partition, the cow, a protected disk) leaving the
images unchanged; progress lines, live and `set progress=lines`; Ctrl-C on a throttled disk
stopping where it says; a drive that drops some writes caught by verify; write throughput."""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (BUILD, Machine, PausedNbd, blkdebug_read_error, check, finish, nbdkit_file_plugin,  # noqa: E402
                          make_pattern_disk, sha256_file, start_nbdkit)
from mkdemo import gpt_disk  # noqa: E402

SECTOR = 512
M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def random_stream(seed, word0, nwords):
    """The appliance's SplitMix64 stream: word i is mix(seed + (i + 1) * gamma), little-endian."""
    out = bytearray(nwords * 8)
    s = (seed + (word0 + 1) * GAMMA) & M64
    for i in range(nwords):
        z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        struct.pack_into("<Q", out, i * 8, z ^ (z >> 31))
        s = (s + GAMMA) & M64
    return bytes(out)


# An nbdkit plugin for a drive that acknowledges writes to a range of sectors but never stores
# them (a lying cache or failing heads): the only honest way to make verify see a mismatch.
LOSSY_PLUGIN = nbdkit_file_plugin('''\
def can_write(fd): return True
def can_flush(fd): return True
def flush(fd, flags): os.fsync(fd)
def pread(fd, buf, offset, flags):
    buf[:] = os.pread(fd, len(buf), offset)
def pwrite(fd, buf, offset, flags):
    lo, hi = int(cfg["drop_start"]), int(cfg["drop_end"])
    end = offset + len(buf)
    if offset < lo:
        os.pwrite(fd, bytes(buf[:min(end, lo) - offset]), offset)
    if end > hi:
        start = max(offset, hi)
        os.pwrite(fd, bytes(buf[start - offset:]), start)
''', "SERIALIZE_ALL_REQUESTS")

tmp = tempfile.mkdtemp(prefix="cowboot-wipe-")
P = {n: os.path.join(tmp, n + ".img") for n in
     ("zero", "pat", "rand", "src", "cow", "part", "keep", "fast", "lossy", "slow1", "slow2",
      "werr", "rerr", "hung", "v4k", "nvme", "sata", "src2", "cowp")}
for n, size in (("zero", 4), ("pat", 4), ("rand", 4), ("keep", 4), ("lossy", 4), ("werr", 4), ("rerr", 4), ("hung", 4), ("v4k", 4), ("nvme", 4),
                ("sata", 4), ("src2", 8), ("slow1", 32),
                ("slow2", 32)):
    make_pattern_disk(P[n], size << 20, n)
gpt_disk(P["src"], 16 << 20)
gpt_disk(P["part"], 8 << 20)
gpt_disk(P["cowp"], 64 << 20)
for n, size in (("cow", 32), ("fast", 128)):
    with open(P[n], "wb") as f:
        f.truncate(size << 20)
before = {n: sha256_file(p) for n, p in P.items()}
with open(P["part"], "rb") as f:
    part_before = f.read()
with open(P["slow1"], "rb") as f:
    slow1_before = f.read()

plugin = os.path.join(tmp, "lossy.py")
with open(plugin, "w") as f:
    f.write(LOSSY_PLUGIN)
DROP = (1000, 1010)   # sectors the lossy drive never stores
nbd_sock = os.path.join(tmp, "lossy.sock")
nbd = start_nbdkit(nbd_sock, ["python", plugin, f"file={P['lossy']}",
                              f"drop_start={DROP[0] * SECTOR}", f"drop_end={DROP[1] * SECTOR}"])

WERR_AT, RERR_AT = 3000, 5000   # blkdebug: every write (read) touching this sector fails
# A zero wipe of a virtio disk goes out as write-zeroes commands: those fail there too.
write_error = (f'[inject-error]\nevent = "write_aio"\niotype = "write"\nerrno = "5"\n'
               f'sector = "{WERR_AT}"\nonce = "off"\n\n'
               f'[inject-error]\nevent = "pwritev_zero"\niotype = "write-zeroes"\nerrno = "5"\n'
               f'sector = "{WERR_AT}"\nonce = "off"\n')
hung = PausedNbd(P["hung"], tmp)
disks = [dict(path=P["zero"], serial="ZERO"), dict(path=P["pat"], serial="PAT"),
         dict(path=P["rand"], serial="RAND"), dict(path=P["src"], serial="SRC"),
         dict(path=P["cow"], serial="COW"), dict(path=P["part"], serial="PART"),
         dict(path=P["keep"], serial="KEEP"), dict(path=P["fast"], serial="FAST"),
         dict(nbd_socket=nbd_sock, serial="LOSSY"),
         dict(path=P["werr"], serial="WERR", blkdebug_rules=write_error),
         dict(path=P["rerr"], serial="RERR", blkdebug_rules=blkdebug_read_error(RERR_AT)),
         dict(nbd_socket=hung.sock, serial="HUNG"), dict(path=P["v4k"], serial="V4K", lbs=4096),
         dict(path=P["src2"], serial="SRC2"), dict(path=P["cowp"], serial="COWP"),
         dict(path=P["nvme"], transport="nvme", serial="NVW"),
         dict(path=P["sata"], transport="sata", serial="SATAW", bus="ide.0")]
# Throttled disks (QEMU's I/O limits) make a wipe last long enough for progress and Ctrl-C.
slow = []
# slow2 runs ~10 s a pass, well past the first 5-second progress line even with QEMU's burst.
for n, limit, rate in (("slow1", "bps-write", 4 << 20), ("slow2", "bps-total", 3 << 20)):
    slow += ["-drive", f"if=none,id={n},file={P[n]},format=raw,cache=none,"
             f"throttling.{limit}={rate}",
             "-device", f"virtio-blk-pci,drive={n},serial={n.upper()}"]

PAT = bytes.fromhex("deadbeef01")   # 5 bytes: does not divide a sector, so phases show
rand_seed = part_seed = fast_seed = hung_below = v4k_seed = None
PAT2 = bytes(range(1, 12))   # 11 bytes
interrupted_at = None
boot_hash = None
try:
    with Machine(disks=disks, extra_args=slow, name="wipe", memory=512) as m:
        m.wait_prompt(90)
        boot_img = os.path.join(m.tmp, "boot.img")
        boot_hash = sha256_file(boot_img)
        out = m.cmd("disks")
        names = dict((s, n) for n, s in re.findall(r"^((?:vd|sata|nvme)\d+(?:n\d+)?)\s.*?\s(ZERO|PAT|RAND|SRC|COW|PART|KEEP|FAST|LOSSY|"
                                                r"WERR|RERR|HUNG|V4K|SRC2|COWP|NVW|SATAW|SLOW1|SLOW2)\s", out, re.M))
        check("every test disk is found", len(names) == 19, out)
        vd = names.get
        out = m.cmd("help wipe")
        check("help wipe prints the usage line and options",
              "wipe <disk> [zero|pattern=<hex>|random[=<seed>]] [verify] --yes" in out and "Ctrl-C" in out, out)

        # Refusals and bad arguments: nothing may be written.
        out = m.cmd(f"wipe {vd('KEEP')} zero")
        check("wipe refuses without --yes, naming the disk", "add --yes" in out and vd("KEEP") in out, out)
        for arg in ("pattern=xyz", "pattern=abc", "pattern=", "pattern=" + "11" * 65):
            out = m.cmd(f"wipe {vd('KEEP')} {arg} --yes")
            check(f"a bad pattern ({arg[:20]}) prints the pattern rule and usage",
                  "1 to 64 bytes of hex" in out and "usage: wipe" in out, out)
        out = m.cmd(f"wipe {vd('KEEP')} zero random --yes")
        check("two fill modes are a usage error", "usage: wipe" in out, out)
        out = m.cmd(f"wipe {vd('KEEP')} fast --yes")
        check("an unknown word is a usage error", "usage: wipe" in out, out)
        out = m.cmd("wipe boot zero --yes")
        check("the boot disk (by `boot`) is refused, in one line", "the boot disk" in out and "error:" not in out, out)
        out = m.cmd("wipe vd0 --yes")
        check("the boot disk (by name) is refused", "the boot disk" in out, out)
        out = m.cmd(f"cow format {vd('COW')} {vd('SRC')} --yes", 60)
        check("cow format for the overlay", "error" not in out, out)
        out = m.cmd(f"cow open {vd('SRC')} {vd('COW')}", 60)
        check("cow open binds the overlay", "ov0:" in out, out)
        cow_sectors = (32 << 20) // SECTOR
        sum_cow = m.cmd(f"sum {vd('COW')} 0 {cow_sectors}", 60)
        out = m.cmd(f"wipe {vd('SRC')} zero --yes")
        check("an overlay's source is refused, in one line", f"{vd('SRC')} is an overlay's source drive" in out and "error:" not in out, out)
        out = m.cmd(f"wipe {vd('SRC')}p1 random --yes")
        check("a partition of the source is refused", f"{vd('SRC')}p1 is on {vd('SRC')}, an overlay's source" in out, out)
        out = m.cmd(f"wipe {vd('COW')} zero --yes")
        check("an open cow is refused", "is an open cow" in out, out)
        out = m.cmd(f"sum {vd('COW')} 0 {cow_sectors}", 60)
        check("the cow is unchanged after the refusal", out.split("(")[0] == sum_cow.split("(")[0], out + sum_cow)
        # A cow in a partition: the partition and its whole disk are refused.
        out = m.cmd(f"cow format {vd('COWP')}p1 {vd('SRC2')} --yes", 60)
        out += m.cmd(f"cow open {vd('SRC2')} {vd('COWP')}p1", 60)
        check("a second overlay with its cow in a partition", "ov1:" in out and "error" not in out, out)
        out = m.cmd(f"wipe {vd('COWP')} zero --yes")
        check("a disk holding an open cow partition is refused, naming it",
              f"{vd('COWP')} holds an open cow, {vd('COWP')}p1" in out, out)
        out = m.cmd(f"wipe {vd('COWP')}p1 zero --yes")
        check("the cow partition itself is refused", f"{vd('COWP')}p1 is an open cow" in out, out)
        m.cmd(f"protect {vd('KEEP')}")
        out = m.cmd(f"wipe {vd('KEEP')} zero --yes")
        check("a read-only disk is refused", "is read-only" in out, out)

        # Zero, a pattern, random with verify.
        out = m.cmd(f"wipe {vd('ZERO')} zero --yes", 60)
        check("wipe zero reports the size written and the flush",
              re.search(r"wrote 4\.0 MiB \(8192 sectors\) of zeros in \d+ ms, [\d.]+ MiB/s; flushed", out), out)
        out = m.cmd("log 10")
        check("the event log records the wipe by serial, and its end",
              f"wipe {vd('ZERO')} (4.0 MiB, serial 'ZERO'): zeros" in out and f"wipe {vd('ZERO')} ended: written" in out, out)
        out = m.cmd(f"wipe {vd('PAT')} pattern=0x{PAT.hex()} verify --yes", 60)
        check("wipe pattern= with verify: all sectors match",
              "of the pattern" in out and "verify %s: all 8192 sectors match" % vd("PAT") in out, out)
        out = m.cmd(f"wipe {vd('RAND')} random verify --yes", 60)
        mm = re.search(r"random stream seed 0x([0-9a-f]{16})", out)
        check("wipe random prints its seed", mm, out)
        rand_seed = int(mm.group(1), 16) if mm else None
        check("wipe random with verify: all sectors match", "all 8192 sectors match" in out, out)

        # 4 KiB sectors, NVMe and AHCI: the same streams through other sector sizes and drivers.
        out = m.cmd(f"wipe {vd('V4K')} random verify --yes", 60)
        mm = re.search(r"random stream seed 0x([0-9a-f]{16})", out)
        v4k_seed = int(mm.group(1), 16) if mm else None
        check("random + verify on 4 KiB sectors", "wrote 4.0 MiB (1024 sectors)" in out and "all 1024 sectors match" in out, out)
        out = m.cmd(f"wipe {vd('NVW')} pattern={PAT2.hex()} verify --yes", 60)
        check("pattern + verify on NVMe", "all 8192 sectors match" in out, out)
        out = m.cmd(f"wipe {vd('SATAW')} random=12345 verify --yes", 60)
        check("random=<seed> + verify on AHCI", "seed 0x0000000000003039" in out and "all 8192 sectors match" in out, out)

        # A partition: only its sectors change; the stream starts at the partition's first byte.
        out = m.cmd(f"wipe {vd('PART')}p1 random verify --yes", 60)
        mm = re.search(r"random stream seed 0x([0-9a-f]{16})", out)
        part_seed = int(mm.group(1), 16) if mm else None
        check("a partition wipe with verify matches", mm and "sectors match" in out, out)

        # A drive that loses writes: verify must find exactly the sectors it dropped.
        out = m.cmd(f"wipe {vd('LOSSY')} zero verify --yes", 60)
        check("verify finds the sectors a lying drive dropped: first LBA and count",
              f"10 bad sectors, first mismatch at LBA {DROP[0]}" in out and "error:" not in out, out)

        # Errors: the failing sector found and named, the wipe stopped.
        out = m.cmd(f"wipe {vd('WERR')} zero --yes", 60)
        check("a write error names the failing sector and stops the wipe",
              re.search(r"write failed at LBA %d: I/O error\n.*stopped; the %d sectors before LBA %d were written"
                        % (WERR_AT, WERR_AT, WERR_AT), out, re.S) and "error: I/O error" in out, out)
        out = m.cmd(f"wipe {vd('RERR')} pattern=c3 verify --yes", 60)
        check("a read error during verify names the failing sector",
              f"read-back failed at LBA {RERR_AT}: media error" in out and "error: media error" in out, out)
        m.cmd("set io-timeout=1500")
        check("nbdkit paused (a drive that stops answering)", hung.pause())
        m.send(f"wipe {vd('HUNG')} zero --yes")
        m.wait_for(r"timed out after 1500 ms, resetting", 30)
        time.sleep(1)
        hung.resume()   # QEMU's device reset waits for the held requests
        m.wait_for(re.escape("cowboot> "), 60)
        out = m.last_before
        mm = re.search(r"write of LBA (\d+)-\d+ failed: command timed out\n"
                       r".*did not fail\n.*stopped; the (\d+) sectors before LBA (\d+) were written", out, re.S)
        check("a write timeout stops the wipe naming the request's range",
              mm and mm.group(1) == mm.group(2) == mm.group(3) and "error: command timed out" in out, out)
        hung_below = int(mm.group(1)) if mm else None
        m.cmd("set io-timeout=30000")

        # Throughput on a 128 MiB disk (QEMU under TCG, host cache bypassed).
        t = time.time()
        out = m.cmd(f"wipe {vd('FAST')} zero --yes", 120)
        host_zero_s = time.time() - t
        zr = re.search(r"wrote 128\.0 MiB .* in (\d+) ms, ([\d.]+ MiB/s)", out)
        check("a 128 MiB zero wipe completes", zr, out)
        t = time.time()
        out = m.cmd(f"wipe {vd('FAST')} random verify --yes", 180)
        host_rand_s = time.time() - t
        rr = re.search(r"wrote 128\.0 MiB .* in (\d+) ms, ([\d.]+ MiB/s)", out)
        mm = re.search(r"random stream seed 0x([0-9a-f]{16})", out)
        fast_seed = int(mm.group(1), 16) if mm else None
        vr = re.search(r"all 262144 sectors match \((\d+) ms, ([\d.]+ MiB/s)\)", out)
        check("a 128 MiB random wipe verifies", rr and vr, out)
        print(f"throughput: zero write {zr and zr.group(2)}, random write {rr and rr.group(2)}, "
              f"verify read+compare {vr and vr.group(2)}; seen from the host (command to prompt): "
              f"zero {host_zero_s:.2f} s, random+verify {host_rand_s:.2f} s", flush=True)

        # Live progress, then Ctrl-C: the wipe stops and says how far it got.
        m.send(f"wipe {vd('SLOW1')} pattern=5a --yes")
        m.wait_for(r"wipe %s: writing \d+%% \([\d.]+ MiB of 32\.0 MiB\) [\d.]+ MiB/s ETA \d+s" % vd("SLOW1"), 30)
        check("a live progress line shows percent, MiB/s and ETA", True)
        m.send_raw(b"\x03")
        m.wait_for(re.escape("cowboot> "), 60)
        out = m.last_before
        mm = re.search(r"interrupted at LBA (\d+) of 65536 \(\d+%\): LBA 0-\d+ written and flushed", out)
        check("Ctrl-C stops the wipe and says how far it got, in one line", mm and "error:" not in out, out)
        interrupted_at = int(mm.group(1)) if mm else None
        with open(os.path.join(m.tmp, "serial.log"), errors="replace", newline="") as f:
            transcript = f.read()
        check("the live line is redrawn in place (a carriage return before it)",
              "\rwipe %s: writing" % vd("SLOW1") in transcript, transcript[-600:])

        m.cmd("set progress=lines")
        m.send(f"wipe {vd('SLOW2')} zero verify --yes")
        m.wait_for(r"\n?wipe %s: writing \d+%% .*ETA \d+s\n" % vd("SLOW2"), 30)
        check("progress=lines prints whole progress lines", True)
        m.wait_for(r"wrote 32\.0 MiB .*; flushed\n", 60)
        check("the throttled wipe completes its writes", True)
        m.wait_for(r"\n?wipe %s: verifying \d+%% .*ETA \d+s\n" % vd("SLOW2"), 30)
        check("the read-back has its own progress lines", True)
        m.send_raw(b"\x03")
        m.wait_for(re.escape("cowboot> "), 60)
        mm = re.search(r"verify %s: interrupted at LBA (\d+) of 65536: 0 bad sectors so far" % vd("SLOW2"), m.last_before)
        check("Ctrl-C stops the read-back, saying where",
              mm and 0 < int(mm.group(1)) < 65536 and "error:" not in m.last_before, m.last_before)
        with open(os.path.join(m.tmp, "serial.log"), errors="replace", newline="") as f:
            transcript = f.read()
        tail = transcript[transcript.rfind("set progress=lines"):]
        check("progress=lines draws nothing in place", "\rwipe" not in tail and "writing" in tail, tail[-600:])
        code = m.poweroff_and_wait(60)
        check("poweroff", code == 0, code)
        # The boot volume takes the reports (docs/report.md); nothing else on it may change.
        efi = subprocess.run(["mtype", "-i", boot_img, "::/EFI/BOOT/BOOTX64.EFI"], stdout=subprocess.PIPE).stdout
        root = subprocess.run(["mdir", "-i", boot_img, "-b", "::/"], stdout=subprocess.PIPE, text=True).stdout.split()
        fsck = subprocess.run(["fsck.fat", "-n", boot_img], stdout=subprocess.PIPE, text=True)
        with open(os.path.join(BUILD, "cowboot.efi"), "rb") as f:
            check("the boot disk is not wiped: its files unchanged beside the reports, fsck.fat -n clean",
                  efi == f.read() and sorted(root) == ["::/EFI/", "::/cowboot/"] and fsck.returncode == 0,
                  (root, fsck.stdout, boot_hash))
finally:
    hung.__exit__()
    nbd.terminate()
    nbd.wait()

# Unattended (cowboot.cfg): a wipe then a refused one; the script stops at the refusal.
with open(P["zero"], "rb") as f:
    check("host: the zero wipe left only zeros", f.read() == bytes(4 << 20))
script = "set progress=lines\nwipe serial=ZERO random=7 verify --yes\nwipe boot --yes\npoweroff\n"
with Machine(disks=[dict(path=P["zero"], serial="ZERO")], cfg=script, name="wipe-script") as m:
    m.wait_prompt(90)
    out = m.last_before
    check("a script runs wipe", "all 8192 sectors match" in out, out[-800:])
    check("a refused wipe stops the script at its line", "script failed at line 3" in out, out[-800:])
    code = m.poweroff_and_wait(60)
    check("poweroff after the script", code == 0, code)


def read(name):
    with open(P[name], "rb") as f:
        return f.read()


size4 = 4 << 20
check("host: the scripted wipe left the stream of seed 7", read("zero") == random_stream(7, 0, size4 // 8))
check("host: the pattern runs unbroken from byte 0", read("pat") == (PAT * (size4 // len(PAT) + 1))[:size4])
if rand_seed is not None:
    check("host: the random wipe equals the stream regenerated from the printed seed",
          read("rand") == random_stream(rand_seed, 0, size4 // 8))
if v4k_seed is not None:
    check("host: the 4 KiB-sector disk holds the stream", read("v4k") == random_stream(v4k_seed, 0, size4 // 8))
check("host: the NVMe disk holds the 11-byte pattern", read("nvme") == (PAT2 * (size4 // len(PAT2) + 1))[:size4])
check("host: the AHCI disk holds the stream of seed 12345", read("sata") == random_stream(12345, 0, size4 // 8))
for n in ("src", "src2", "keep"):
    check(f"host: the refused {n} image is unchanged", sha256_file(P[n]) == before[n])
part = read("part")
first, last = 2048, (8 << 20) // SECTOR - 34
if part_seed is not None:
    check("host: the partition holds the stream from its first byte",
          part[first * SECTOR:(last + 1) * SECTOR] == random_stream(part_seed, 0, (last + 1 - first) * SECTOR // 8))
check("host: nothing outside the partition changed (GPT headers, entries, gaps)",
      part[:first * SECTOR] == part_before[:first * SECTOR] and
      part[(last + 1) * SECTOR:] == part_before[(last + 1) * SECTOR:])
fast = read("fast")
if fast_seed is not None:
    mib_words = (1 << 20) // 8
    check("host: the 128 MiB random wipe's first and last MiB equal the stream",
          fast[:1 << 20] == random_stream(fast_seed, 0, mib_words) and
          fast[-(1 << 20):] == random_stream(fast_seed, (128 << 20) // 8 - mib_words, mib_words))
if interrupted_at is not None:
    s1 = read("slow1")
    cut = interrupted_at * SECTOR
    check("host: the interrupted wipe wrote everything below the LBA it named",
          s1[:cut] == b"\x5a" * cut, interrupted_at)
    check("host: and nothing at or after it", s1[cut:] == slow1_before[cut:], interrupted_at)
    check("host: it was interrupted part way", 0 < interrupted_at < 65536, interrupted_at)
check("host: the throttled zero wipe left only zeros", read("slow2") == bytes(32 << 20))
werr, rerr = read("werr"), read("rerr")
check("host: every sector before the failing one was written",
      werr[:WERR_AT * SECTOR] == bytes(WERR_AT * SECTOR))
check("host: the failing sector kept its old data",
      werr[WERR_AT * SECTOR:(WERR_AT + 1) * SECTOR] != bytes(SECTOR))
check("host: the read-error disk was written in full", rerr == b"\xc3" * size4)
if hung_below is not None:
    check("host: the hung disk got everything before the failed request",
          read("hung")[:hung_below * SECTOR] == bytes(hung_below * SECTOR), hung_below)
lossy = read("lossy")
check("host: the lossy drive kept its old data only in the dropped sectors",
      lossy[:DROP[0] * SECTOR] == bytes(DROP[0] * SECTOR) and
      lossy[DROP[1] * SECTOR:] == bytes(size4 - DROP[1] * SECTOR) and
      lossy[DROP[0] * SECTOR:DROP[1] * SECTOR] != bytes((DROP[1] - DROP[0]) * SECTOR))
shutil.rmtree(tmp, ignore_errors=True)
finish()
