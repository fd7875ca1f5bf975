#!/usr/bin/env python3
"""USB mass storage through the console: qemu-xhci and nec-usb-xhci controllers, usb-storage on
USB3 and USB2 ports and behind a usb-hub, usb-bot with two LUNs (512 and 4096-byte sectors), UAS
(usb-uas + scsi-hd) at high speed and with streams at super speed, a
3 TiB sparse qcow2 (READ/WRITE 16), reads against the host, writes and flush, a media error
(blkdebug, ENODATA: the drive's "unrecovered read error"), the `usb` tree, and unplug/replug
through QMP (gone, then back under its old name; another drive on the same port is a new disk).
The read-only source image never changes."""
import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (Machine, PausedNbd, check, check_hung_read, finish, host_crc,  # noqa: E402
                          make_pattern_disk, sha256_file)
from mkdemo import gpt_disk  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cowboot-usb-")
atexit.register(shutil.rmtree, tmp, True)
SRC, HUBD, L0, L1, NEC, OTHER, BIG, HANG = (os.path.join(tmp, n) for n in
                                             ("src.img", "hub.img", "l0.img", "l1.img", "nec.img", "other.img",
                                              "big.qcow2", "hang.img"))
make_pattern_disk(HANG, 2 << 20, "usbHang")
U0, U1, U3, UN = (os.path.join(tmp, n) for n in ("uas0.img", "uas1.img", "uas3.img", "uasn.img"))
make_pattern_disk(UN, 1 << 20, "uasNec")
DEEP, HP = os.path.join(tmp, "deep.img"), os.path.join(tmp, "hp.img")
make_pattern_disk(DEEP, 1 << 20, "usbDeep")
make_pattern_disk(HP, 1 << 20, "usbHubPlug")
make_pattern_disk(U0, 4 << 20, "uasZero")
make_pattern_disk(U1, 4 << 20, "uasOne")
make_pattern_disk(U3, 1 << 20, "uasSuper")
make_pattern_disk(SRC, 16 << 20, "usbSrc")
make_pattern_disk(HUBD, 4 << 20, "usbHub")
make_pattern_disk(L0, 4 << 20, "lunZero")
make_pattern_disk(L1, 4 << 20, "lunOne")
make_pattern_disk(NEC, 2 << 20, "usbNec")
gpt_disk(OTHER, 4 << 20)   # a GPT with one partition: found when plugged in after boot
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", BIG, "3T"], check=True)
src_hash = sha256_file(SRC)
BAD = 777
rules = os.path.join(tmp, "bad.conf")
with open(rules, "w") as f:   # ENODATA: QEMU's SCSI disk answers MEDIUM ERROR / unrecovered read error
    f.write(f'[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "61"\nsector = "{BAD}"\nonce = "off"\n')

ctrl = ["-device", "qemu-xhci,id=xhci",
        # -blockdev nodes outlive device_del (a -drive goes with its device): the drive is re-plugged.
        "-blockdev", json.dumps({"driver": "raw", "node-name": "src", "read-only": True,
                                 "file": {"driver": "blkdebug", "config": rules,
                                          "image": {"driver": "file", "filename": SRC}}}),
        "-device", "usb-storage,id=stick,bus=xhci.0,port=1,drive=src,serial=USB-SRC-1",
        "-device", "usb-hub,id=hub,bus=xhci.0,port=2",
        "-drive", f"if=none,id=hubd,file={HUBD},format=raw,cache=none",
        "-device", "usb-storage,bus=xhci.0,port=2.2,drive=hubd,serial=USB-HUB-1",
        # A second tier: a hub on the hub, a disk on that.
        "-device", "usb-hub,id=hub2,bus=xhci.0,port=2.4",
        "-drive", f"if=none,id=deep,file={DEEP},format=raw,cache=none",
        "-device", "usb-storage,bus=xhci.0,port=2.4.1,drive=deep,serial=USB-DEEP",
        "-blockdev", json.dumps({"driver": "raw", "node-name": "hp", "file": {"driver": "file", "filename": HP}}),
        "-device", "usb-bot,id=bot,bus=xhci.0,port=3",
        "-drive", f"if=none,id=l0,file={L0},format=raw,cache=none",
        "-device", "scsi-hd,bus=bot.0,scsi-id=0,lun=0,drive=l0,serial=BOT-L0",
        "-drive", f"if=none,id=l1,file={L1},format=raw,cache=none",
        "-device", "scsi-hd,bus=bot.0,scsi-id=0,lun=1,drive=l1,serial=BOT-L1,"
                   "logical_block_size=4096,physical_block_size=4096",
        "-drive", f"if=none,id=big,file={BIG},format=qcow2,cache=none",
        # UAS at SuperSpeed: bulk streams.
        "-device", "usb-uas,id=uas3,bus=xhci.0,port=4",
        "-drive", f"if=none,id=u3,file={U3},format=raw,cache=none",
        "-device", "scsi-hd,bus=uas3.0,scsi-id=0,lun=0,drive=u3,serial=UAS-SS",
        "-device", "nec-usb-xhci,id=nec",
        "-drive", f"if=none,id=necd,file={NEC},format=raw,cache=none",
        "-device", "usb-storage,bus=nec.0,port=1,drive=necd,serial=USB-NEC-1",
        "-device", "usb-storage,bus=nec.0,port=3,drive=big,serial=USB-BIG-3T",
        # QEMU's nec-usb-xhci offers no streams: a SuperSpeed UAS device there is not driven.
        "-device", "usb-uas,id=uasn,bus=nec.0,port=2",
        "-drive", f"if=none,id=un,file={UN},format=raw,cache=none,readonly=on",
        "-device", "scsi-hd,bus=uasn.0,scsi-id=0,lun=0,drive=un,serial=UAS-NEC",
        # UAS at high speed (a controller without USB3 ports), two LUNs, 512 and 4096-byte sectors.
        "-device", "qemu-xhci,id=hsx,p3=0", "-device", "usb-uas,id=uas,bus=hsx.0",
        "-drive", f"if=none,id=u0,file={U0},format=raw,cache=none",
        "-device", "scsi-hd,bus=uas.0,scsi-id=0,lun=0,drive=u0,serial=UAS-L0",
        "-drive", f"if=none,id=u1,file={U1},format=raw,cache=none",
        "-device", "scsi-hd,bus=uas.0,scsi-id=0,lun=1,drive=u1,serial=UAS-L1,"
                   "logical_block_size=4096,physical_block_size=4096",
        "-blockdev", json.dumps({"driver": "raw", "node-name": "other",
                                 "file": {"driver": "file", "filename": OTHER}})]


def crc_of(out):
    got = re.search(r"crc32 ([0-9a-f]{8})", out)
    return got.group(1) if got else None


nbd = PausedNbd(HANG, tmp)   # a drive behind the hub whose reads can be held (a hung bridge)
with Machine(controllers=ctrl, name="usb", disks=[dict(nbd_socket=nbd.sock, transport="usb", serial="USB-HANG",
                                                        port="2.3")]) as m:
    m.nbd = nbd
    m.wait_prompt(120)
    boot_log = m.last_before
    out = m.cmd("disks")
    rows = {serial: name for name, serial in re.findall(r"^(usb\d+-[\w.]+)\s+.*?\s(\S+)\s+usb\s", out, re.M)}
    hdr = next((l for l in out.splitlines() if l.startswith("name ")), "")
    end = hdr.find("size") + 4
    listed = [l for l in out.splitlines() if re.match(r"(usb|vd|sata|nvme)\S*\s", l)]
    check("disks lines up beside names as long as usb0-6.4.1: every size ends under the header's",
          end > 4 and any(len(l.split()[0]) > 8 for l in listed) and
          all(re.fullmatch(r"\S+\s+[\d.]+ \S+", l[:end]) and l[end:end + 1] == " " for l in listed), out)
    check("every USB disk is listed with its serial", set(rows) >= {"USB-SRC-1", "USB-HUB-1", "BOT-L0", "BOT-L1",
                                                                  "USB-BIG-3T", "USB-NEC-1", "UAS-L0", "UAS-L1"}, out)
    src, hubd, l0, l1 = rows.get("USB-SRC-1"), rows.get("USB-HUB-1"), rows.get("BOT-L0"), rows.get("BOT-L1")
    big, nec, u0, u1 = rows.get("USB-BIG-3T"), rows.get("USB-NEC-1"), rows.get("UAS-L0"), rows.get("UAS-L1")
    check("the UAS LUNs: 512 and 4096-byte sectors", re.search(rf"^{u1}\s+4\.0 MiB\s+4096/4096", out, re.M) and
          re.search(rf"^{u0}\s+4\.0 MiB\s+512/512", out, re.M), out)
    uss = rows.get("UAS-SS")
    check("a SuperSpeed UAS device (streams) is a disk", uss and re.search(rf"^{uss}\s+1\.0 MiB\s+512/512", out, re.M), out)
    check("the model comes from INQUIRY", re.search(rf"^{src}\s+16\.0 MiB\s+512/512\s+QEMU QEMU HARDDISK", out, re.M), out)
    check("the 4096-byte LUN has 4096-byte sectors", re.search(rf"^{l1}\s+4\.0 MiB\s+4096/4096", out, re.M), out)
    check("the 3 TiB disk has its size (READ CAPACITY 16)", re.search(rf"^{big}\s+3\.0 TiB\s+512/512", out, re.M), out)
    o = m.cmd("pci")
    check("pci shows the xHCI controllers bound", len(re.findall(r"1b36:000d.*xhci", o)) == 2 and
          re.search(r"1033:0194.*xhci", o), o)
    tree = m.cmd("usb")
    check("usb lists both controllers", "xhci0 (pci" in tree and "xhci1 (pci" in tree and "1033:0194" in tree, tree)
    check("usb shows the hub and the disk behind it by port path",
          re.search(r"6\s+full\s+.*hub, \d+ ports", tree) and re.search(r"6\.2\s+full\s+.*USB-HUB-1.*driver usb-msc", tree), tree)
    check("usb shows the UAS devices bound at high speed and at super speed",
          re.search(r"high\s+46f4:0003.*class 08/06/62, driver usb-msc", tree) and
          re.search(r"super\s+46f4:0003.*class 08/06/62, driver usb-msc", tree), tree)
    check("a SuperSpeed UAS device on a controller without streams is listed, not driven",
          re.search(r"super\s+46f4:0003.*class 08/06/62, no driver", tree) and "UAS-NEC" not in out and
          "UAS at SuperSpeed without bulk streams: not driven" in boot_log, tree)
    check("usb shows the second-tier hub and the disk on it",
          re.search(r"6\.4\s+full\s+.*hub, \d+ ports", tree) and re.search(r"6\.4\.1\s+full\s+.*USB-DEEP.*driver usb-msc", tree), tree)
    # Disk names by port path: usb<controller>-<root port>.<hub ports>, l<LUN> after LUN 0; the
    # tree lists each device's disks after its driver.
    named, hc = {}, None
    for line in tree.splitlines():
        mh = re.match(r"xhci(\d+) \(pci", line)
        if mh:
            hc = mh.group(1)
        md = re.search(r"(\d+(?:\.\d+)*)\s+(?:full|low|high|super\+?)\s.*driver usb-msc \(([^)]*)\)", line)
        if md and hc is not None:
            for n in md.group(2).split(", "):
                named[n] = (hc, md.group(1))
    bad = [n for n, (c, p) in named.items() if not re.fullmatch(rf"usb{c}-{re.escape(p)}(l\d+)?", n)]
    check("every USB disk is named by its controller and port path, as usb shows",
          len(named) >= 11 and not bad and set(named) >= set(rows.values()) - {None}, (bad, named, tree))
    check("the stick on port 1, the disks behind the hub and the second tier, the second LUN",
          src == "usb0-1" and hubd == "usb0-6.2" and rows.get("USB-DEEP") == "usb0-6.4.1" and l1 == f"{l0}l1", out)
    check("usb shows speeds and classes", re.search(r"1\s+super\s+46f4:0001.*USB-SRC-1\s+class 08/06/50, driver usb-msc", tree), tree)
    for name, path, lba, count, ls in ((src, SRC, 0, BAD, 512), (src, SRC, BAD + 1, 30000, 512), (hubd, HUBD, 3, 8000, 512),
                                       (l0, L0, 0, 8192, 512), (l1, L1, 1, 1000, 4096), (nec, NEC, 0, 4096, 512),
                                       (u0, U0, 0, 8192, 512), (u1, U1, 2, 1000, 4096), (uss, U3, 0, 2048, 512),
                                       (rows.get("USB-DEEP"), DEEP, 0, 2048, 512)):
        o = m.cmd(f"sum {name} {lba} {count}", 120)
        check(f"{name}: sum of {count} sectors at {lba} matches the host", crc_of(o) == host_crc(path, lba, count, ls), o)
    o = m.cmd(f"read {src} {BAD}")
    check("a media error names its LBA", f"media error (unreadable sector) at LBA {BAD}" in o, o)
    o = m.cmd(f"read {src} {BAD + 1}")
    check("the disk reads on after the media error", f"usbSrc lba {BAD + 1}" in o, o[:200])
    o = m.cmd(f"testwrite {src} 0 1 0")
    check("a read-only drive's writes are refused by the block layer", "read-only" in o, o)
    LAST = 3 * (1 << 40) // 512 - 8
    o = m.cmd(f"testwrite {big} {LAST} 8 0x3c", 60)
    check("a write past 2 TiB (WRITE 16) is acknowledged", "wrote and flushed 8 sectors" in o, o)
    o = m.cmd(f"read {big} {LAST + 7}")
    check("and reads back past 2 TiB (READ 16)", "3c 3c 3c 3c" in o, o[:300])
    o = m.cmd(f"testwrite {l1} 7 3 0x5a", 60)
    check("a write to the 4096-byte LUN is acknowledged", "wrote and flushed 3 sectors" in o, o)
    o = m.cmd(f"testwrite {u1} 9 5 0x6b", 60)
    check("a write to the UAS 4096-byte LUN is acknowledged", "wrote and flushed 5 sectors" in o, o)
    o = m.cmd(f"info {u0}")
    check("info names the UAS transport", "UAS" in o and "high speed" in o, o)
    o = m.cmd(f"testwrite {uss} 11 4 0x3e", 60)
    check("a write to the SuperSpeed UAS disk (streams) is acknowledged", "wrote and flushed 4 sectors" in o, o)
    o = m.cmd(f"info {uss}")
    check("info says it runs UAS with streams", "UAS (streams)" in o and "super speed" in o, o)
    o = m.cmd(f"testwrite {hubd} 100 300 0xa5", 60)
    check("a write behind the hub is acknowledged", "wrote and flushed 300 sectors" in o, o)
    o = m.cmd(f"info {src}")
    check("info names the USB side", re.search(r"usb: 46f4:0001, USB serial 'USB-SRC-1', LUN 0", o) and
          "port 1 on xhci0, super speed" in o, o)
    check("info says when the bridge has no SAT pass-through (QEMU's has none)",
          "drive identity: not available through this bridge" in o, o)

    hang = rows.get("USB-HANG")
    check_hung_read(m, hang, 50, "USB", extra_wait=rf"{hang}: BOT reset recovery")
    o = m.cmd(f"info {hang}")
    check("info counts the timeout and the reset", "timeouts 1, resets 1" in o, o)
    m.cmd("set io-timeout=30000")

    # A disk plugged into a hub port while running, then unplugged.
    r = m.qmp("device_add", driver="usb-storage", id="hp", bus="xhci.0", port="2.6", drive="hp", serial="USB-HUBPLUG")
    check("QMP device_add behind the hub", "return" in r, r)
    hp = m.wait_for(r"disk (usb\d+-[\w.]+): 2048 sectors of 512 bytes, model '[^']*', serial 'USB-HUBPLUG'", 30).group(1)
    o = m.cmd(f"read {hp} 9")
    check("a disk plugged into a hub port while running is found and reads", "usbHubPlug lba 9" in o, o[:200])
    check("named by that port, not by the order it came in", hp == "usb0-6.6", hp)
    m.qmp("device_del", id="hp")
    m.wait_for(rf"disk {hp} is gone", 30)
    check("and unplugged from the hub it is gone", True)
    time.sleep(1)
    m.qmp("device_add", driver="usb-storage", id="hp2", bus="xhci.0", port="2.6", drive="hp", serial="USB-HUBPLUG")
    m.wait_for(rf"disk {hp} is back", 30)
    o = m.cmd(f"read {hp} 8")
    check("plugged into the same port again it has the same name and reads", "usbHubPlug lba 8" in o, o[:200])

    # Unplug, then the same drive again on the same port: gone, then back with its old name.
    r = m.qmp("device_del", id="stick")
    check("QMP device_del of the stick", "return" in r, r)
    m.wait_for(rf"disk {src} is gone", 30)
    check("the unplugged disk is gone", True)
    o = m.cmd(f"read {src} 1")
    check("reads of a gone disk fail at once", "device is gone" in o, o)
    time.sleep(1)
    r = m.qmp("device_add", driver="usb-storage", id="stick2", bus="xhci.0", port="1", drive="other",
              serial="USB-OTHER")
    check("QMP device_add of another drive", "return" in r, r)
    new = m.wait_for(r"disk (usb\d+-[\w.]+): \d+ sectors of 512 bytes, model 'QEMU QEMU HARDDISK', serial 'USB-OTHER'", 30).group(1)
    m.wait_for(rf"disk {new}p1: ", 30)
    check("a disk plugged in after boot has its GPT partition scanned", True)
    o = m.cmd(f"read {new}p1 3")
    check("and the partition reads", "|cowboot demo sou|" in o and "lba 2051" in o, o[:300])
    out = m.cmd("disks")
    check("another drive on the same port is a new disk; the old one stays gone",
          re.search(rf"^{src}\s.*gone", out, re.M) and "USB-OTHER" in out, out)
    check("the new drive's name says the port, apart from the gone disk that holds it", new == f"{src}_2", new)
    r = m.qmp("device_del", id="stick2")
    m.wait_for(r"USB-OTHER|removed", 30)
    time.sleep(1)
    r = m.qmp("device_add", driver="usb-storage", id="stick3", bus="xhci.0", port="1", drive="src",
              serial="USB-SRC-1")
    check("QMP device_add of the same drive", "return" in r, r)
    m.wait_for(rf"disk {src} is back", 30)
    o = m.cmd(f"sum {src} {BAD + 1} 2000", 60)
    check("the same drive is back under its old name and reads", crc_of(o) == host_crc(SRC, BAD + 1, 2000), o)
    code = m.poweroff_and_wait()
    check("poweroff", code == 0, code)
nbd.__exit__()
with open(L1, "rb") as f:
    f.seek(7 * 4096)
    check("the 4096-byte sectors reached the host image", f.read(3 * 4096) == b"\x5a" * 3 * 4096)
with open(U3, "rb") as f:
    f.seek(11 * 512)
    check("the UAS streams write reached the host image", f.read(4 * 512) == b"\x3e" * 4 * 512)
with open(U1, "rb") as f:
    f.seek(9 * 4096)
    check("the UAS write reached the host image", f.read(5 * 4096) == b"\x6b" * 5 * 4096)
with open(HUBD, "rb") as f:
    f.seek(100 * 512)
    check("the write behind the hub reached the host image", f.read(300 * 512) == b"\xa5" * 300 * 512)
check("the source image is unchanged", sha256_file(SRC) == src_hash)
finish()
