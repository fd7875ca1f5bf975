#!/usr/bin/env python3
"""Writes the seeds of the firmware and device parsers' fuzzers into tests/fuzz/seeds/<name>/.

Most come from QEMU 7.2 itself, read through its qtest interface with the guest CPU stopped:
the ACPI tables it gives the firmware (fw_cfg's etc/acpi/tables, placed and patched as its
etc/table-loader says), PCI configuration spaces of real device models, ATA IDENTIFY and SMART
READ DATA over the legacy IDE ports, NVMe Identify and the health log over a hand-made admin
queue. Beside them, shapes of real hardware built from the specifications (an OVMF-style RSDP 2.0
with XSDT, a 512e SATA drive with NCQ and SMART attributes, an NVMe drive with two LBA
formats), and a few broken variants of each. Run once; the output is committed.
    python3 tests/fuzz/mkseeds.py
"""
import os
import socket
import struct
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = os.path.join(ROOT, "tests", "fuzz", "seeds")
ACPI_BASE = 0x7f000000   # where fuzz_acpi places its memory image


class QTest:
    """QEMU with the CPU stopped (-S), driven through qtest's line protocol on a unix socket."""

    def __init__(self, args):
        self.dir = tempfile.mkdtemp()
        path = os.path.join(self.dir, "qtest.sock")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(path)
        srv.listen(1)
        self.p = subprocess.Popen(["qemu-system-x86_64", "-display", "none", "-nodefaults", "-S",
                                   "-qtest", "unix:" + path, "-qtest-log", "/dev/null"] + args)
        srv.settimeout(30)
        self.s, _ = srv.accept()
        srv.close()
        self.buf = b""

    def cmd(self, line):
        self.s.sendall((line + "\n").encode())
        while True:
            while b"\n" not in self.buf:
                chunk = self.s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("qemu exited")
                self.buf += chunk
            reply, self.buf = self.buf.split(b"\n", 1)
            reply = reply.decode()
            if reply.startswith("IRQ"):
                continue
            if not reply.startswith("OK"):
                raise RuntimeError(f"{line}: {reply}")
            return reply.split()[1:]

    def outb(self, port, v): self.cmd(f"outb 0x{port:x} 0x{v:x}")
    def outw(self, port, v): self.cmd(f"outw 0x{port:x} 0x{v:x}")
    def outl(self, port, v): self.cmd(f"outl 0x{port:x} 0x{v:x}")
    def inb(self, port): return int(self.cmd(f"inb 0x{port:x}")[0], 16)
    def inw(self, port): return int(self.cmd(f"inw 0x{port:x}")[0], 16)
    def inl(self, port): return int(self.cmd(f"inl 0x{port:x}")[0], 16)
    def write(self, addr, data): self.cmd(f"write 0x{addr:x} 0x{len(data):x} 0x{data.hex()}")
    def read(self, addr, n): return bytes.fromhex(self.cmd(f"read 0x{addr:x} 0x{n:x}")[0][2:])
    def writel(self, addr, v): self.cmd(f"writel 0x{addr:x} 0x{v:x}")
    def readl(self, addr): return int(self.cmd(f"readl 0x{addr:x}")[0], 16)

    def cfg_read(self, dev, off, fn=0):
        self.outl(0xcf8, 0x80000000 | dev << 11 | fn << 8 | off)
        return self.inl(0xcfc)

    def cfg_write(self, dev, off, v, fn=0):
        self.outl(0xcf8, 0x80000000 | dev << 11 | fn << 8 | off)
        self.outl(0xcfc, v)

    def config_space(self, dev, fn=0):
        return b"".join(struct.pack("<I", self.cfg_read(dev, o, fn)) for o in range(0, 256, 4))

    def close(self):
        self.p.kill()
        self.p.wait()


def put(name, fname, data):
    d = os.path.join(SEEDS, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


def checksum_fix(b, at, start=0, end=None):
    end = len(b) if end is None else end
    b[at] = 0
    b[at] = (-sum(b[start:end])) & 0xff


# ---- ACPI ----------------------------------------------------------------------------------
def fw_cfg_files(q):
    q.outw(0x510, 0x19)
    count = struct.unpack(">I", bytes(q.inb(0x511) for _ in range(4)))[0]
    raw = bytes(q.inb(0x511) for _ in range(64 * count))
    files = {}
    for i in range(count):
        size, sel = struct.unpack(">IH", raw[64 * i:64 * i + 6])
        files[raw[64 * i + 8:64 * i + 64].split(b"\0")[0].decode()] = (sel, size)
    return files


def fw_cfg_read(q, files, name):
    sel, size = files[name]
    q.write(0x1000, struct.pack(">IIQ", sel << 16 | 0x08 | 0x02, size, 0x100000))   # select + read
    q.outl(0x514, 0)
    q.outl(0x518, struct.unpack("<I", struct.pack(">I", 0x1000))[0])   # big-endian register
    return q.read(0x100000, size)


def qemu_acpi(machine):
    """The tables as OVMF or SeaBIOS would place them: each loader ALLOCATE in turn, pointers
    patched (ADD_POINTER), checksums recomputed (ADD_CHECKSUM)."""
    q = QTest(["-M", machine])
    try:
        # The PM base and (q35) PCIEXBAR as OVMF programs them: QEMU builds FADT and MCFG from them.
        if machine == "q35":
            q.cfg_write(0, 0x64, 0)
            q.cfg_write(0, 0x60, 0xb0000001)
            q.cfg_write(0x1f, 0x40, 0x601)          # ICH9 LPC PMBASE
            q.cfg_write(0x1f, 0x44, 0x80)           # ACPI_CNTL: decode on
        else:
            q.cfg_write(1, 0x40, 0xb001, fn=3)      # PIIX4 PM base
            q.cfg_write(1, 0x80, 0x1, fn=3)         # PMIOSE
        files = fw_cfg_files(q)
        loader = fw_cfg_read(q, files, "etc/table-loader")
        blobs, place, at = {}, {}, 0
        for i in range(0, len(loader), 128):
            e = loader[i:i + 128]
            cmd = struct.unpack("<I", e[:4])[0]
            if cmd == 1:   # ALLOCATE file, align, zone
                name = e[4:60].split(b"\0")[0].decode()
                align = struct.unpack("<I", e[60:64])[0]
                at = (at + align - 1) // align * align
                blobs[name] = bytearray(fw_cfg_read(q, files, name))
                place[name] = at
                at += len(blobs[name])
        for i in range(0, len(loader), 128):
            e = loader[i:i + 128]
            cmd = struct.unpack("<I", e[:4])[0]
            if cmd == 2:   # ADD_POINTER dest, src, offset, size
                dst = e[4:60].split(b"\0")[0].decode()
                src = e[60:116].split(b"\0")[0].decode()
                off, size = struct.unpack("<IB", e[116:121])
                v = int.from_bytes(blobs[dst][off:off + size], "little") + ACPI_BASE + place[src]
                blobs[dst][off:off + size] = (v & ((1 << 8 * size) - 1)).to_bytes(size, "little")
        for i in range(0, len(loader), 128):
            e = loader[i:i + 128]
            if struct.unpack("<I", e[:4])[0] == 3:   # ADD_CHECKSUM file, result, start, length
                name = e[4:60].split(b"\0")[0].decode()
                res, start, length = struct.unpack("<III", e[60:72])
                checksum_fix(blobs[name], res, start, start + length)
    finally:
        q.close()
    # fuzz_acpi looks for the RSDP at the image's start: QEMU's loader allocates it first.
    if place["etc/acpi/rsdp"] != 0:
        raise RuntimeError("the RSDP is not the first allocation")
    image = bytearray(max(place[n] + len(b) for n, b in blobs.items()))
    for n, b in blobs.items():
        image[place[n]:place[n] + len(b)] = b
    return image


def sdt(sig, body, revision=1):
    h = bytearray(sig + struct.pack("<IBB", 36 + len(body), revision, 0) + b"COWBT " + b"SEEDTABL"
                  + struct.pack("<I", 1) + b"CWBT" + struct.pack("<I", 1)) + body
    checksum_fix(h, 9)
    return h


def trim(image):
    """Up to the last table the root points at: QEMU's blob is padded to 128 KiB."""
    end = len(image.rstrip(b"\0"))
    return image[:(end + 15) // 16 * 16]


def table_addrs(image):
    rsdt = struct.unpack("<I", image[16:20])[0] - ACPI_BASE
    n = (struct.unpack("<I", image[rsdt + 4:rsdt + 8])[0] - 36) // 4
    return rsdt, [struct.unpack("<I", image[rsdt + 36 + 4 * i:rsdt + 40 + 4 * i])[0] for i in range(n)]


def with_xsdt(image):
    """OVMF installs QEMU's tables under an RSDP 2.0 with an XSDT (what the appliance sees)."""
    image = bytearray(trim(image))
    _, addrs = table_addrs(image)
    xsdt_at = len(image)
    image += sdt(b"XSDT", b"".join(struct.pack("<Q", a) for a in addrs))
    rsdp = bytearray(image[:20])
    rsdp[15] = 2
    checksum_fix(rsdp, 8, 0, 20)
    rsdp += struct.pack("<IQ", 36, ACPI_BASE + xsdt_at) + b"\0\0\0\0"
    checksum_fix(rsdp, 32, 0, 36)
    image[:36] = rsdp   # QEMU leaves room: its RSDP sits alone in the first allocation
    return image


def find_table(image, sig):
    _, addrs = table_addrs(image)
    for a in addrs:
        if image[a - ACPI_BASE:a - ACPI_BASE + 4] == sig:
            return a - ACPI_BASE
    raise KeyError(sig)


def acpi_seeds():
    q35 = trim(qemu_acpi("q35"))
    pc = trim(qemu_acpi("pc"))
    put("acpi", "qemu-q35-rsdt", q35)
    put("acpi", "qemu-pc-rsdt", pc)
    x = with_xsdt(q35)
    put("acpi", "ovmf-q35-xsdt", x)
    # Broken the ways firmware breaks them.
    b = bytearray(x)
    b[find_table(b, b"MCFG") + 9] ^= 0x55                 # MCFG checksum wrong
    put("acpi", "bad-mcfg-checksum", b)
    b = bytearray(x)
    xsdt = struct.unpack("<Q", b[24:32])[0] - ACPI_BASE
    b[xsdt + 36:xsdt + 44] = struct.pack("<Q", 0xfee00000)   # an entry pointing at MMIO
    checksum_fix(b, xsdt + 9, xsdt, xsdt + struct.unpack("<I", b[xsdt + 4:xsdt + 8])[0])
    put("acpi", "xsdt-entry-nowhere", b)
    b = bytearray(x)
    b[xsdt + 9] ^= 1                                       # XSDT broken: the RSDT must be used
    put("acpi", "bad-xsdt-use-rsdt", b)
    b = bytearray(x)
    f = find_table(b, b"FACP")
    b[f + 4:f + 8] = struct.pack("<I", 80)                 # a short FADT, PM timer at its edge
    checksum_fix(b, f + 9, f, f + 80)
    put("acpi", "short-fadt", b)


# ---- PCI configuration spaces --------------------------------------------------------------
def pci_seeds():
    devs = [("ahci", None, 0x1f, 2),
            ("nvme", ["-drive", "if=none,id=n0,file=null-co://,format=raw", "-device", "nvme,drive=n0,serial=S,addr=04.0"], 4, 0),
            ("virtio-blk", ["-drive", "if=none,id=v0,file=null-co://,format=raw", "-device", "virtio-blk-pci,drive=v0,addr=05.0"], 5, 0),
            ("e1000e", ["-device", "e1000e,addr=06.0"], 6, 0),
            ("xhci", ["-device", "qemu-xhci,addr=07.0"], 7, 0),
            ("pcie-root-port", ["-device", "pcie-root-port,addr=08.0,chassis=1"], 8, 0)]
    args = ["-M", "q35"]
    for _, extra, _, _ in devs:
        args += extra or []
    q = QTest(args)
    try:
        for name, _, dev, fn in devs:
            cs = q.config_space(dev, fn)
            assert cs[:2] != b"\xff\xff", name
            put("pci_caps", name, cs)
    finally:
        q.close()
    cs = bytearray(open(os.path.join(SEEDS, "pci_caps", "virtio-blk"), "rb").read())
    first = cs[0x34]
    cs[first + 1] = first                                  # a capability pointing at itself
    put("pci_caps", "loop-self", cs)
    cs = bytearray(open(os.path.join(SEEDS, "pci_caps", "e1000e"), "rb").read())
    cs[cs[0x34] + 1] = 0x10                               # into the header
    put("pci_caps", "into-header", cs)


# ---- ATA -----------------------------------------------------------------------------------
def ata_pio(q, cmd, feature=0, lba_mid=0, lba_high=0):
    q.outb(0x1f6, 0xa0)
    q.outb(0x1f1, feature)
    q.outb(0x1f4, lba_mid)
    q.outb(0x1f5, lba_high)
    q.outb(0x1f7, cmd)
    st = q.inb(0x1f7)
    if st & 0x01 or not st & 0x08:
        raise RuntimeError(f"ATA command {cmd:#x}: status {st:#x}")
    return b"".join(struct.pack("<H", q.inw(0x1f0)) for _ in range(256))


def qemu_ata(extra):
    q = QTest(["-M", "pc", "-blockdev", "driver=null-co,node-name=d0,size=" + str(8 << 30),
               "-device", "ide-hd,drive=d0,bus=ide.0,serial=SEEDSERIAL01,model=QEMU seed disk" + extra])
    try:
        ident = ata_pio(q, 0xec)
        smart = ata_pio(q, 0xb0, 0xd0, 0x4f, 0xc2)
    finally:
        q.close()
    return ident, smart


def ata_words(words):
    return b"".join(struct.pack("<H", w & 0xffff) for w in words)


def ata_str(s, n):
    s = s.ljust(2 * n)[:2 * n].encode()
    return [s[2 * i] << 8 | s[2 * i + 1] for i in range(n)]


def real_sata_identify():
    """A 2 TB 512e SATA drive as ATA8-ACS lays it out (words used by the driver, the rest zero)."""
    w = [0] * 256
    w[0] = 0x0040
    w[10:20] = ata_str("WD-WCC4M0ABCDEF", 10)
    w[23:27] = ata_str("82.00A82", 4)
    w[27:47] = ata_str("WDC WD20EFRX-68EUZN0", 20)
    w[47] = 0x8010
    w[49] = 0x2f00
    w[53] = 0x0007
    w[60], w[61] = 0xffff, 0x0fff                 # LBA28 saturated
    w[75] = 31                                    # queue depth 32
    w[76] = 0x970e                                # SATA 3, NCQ
    w[80], w[81] = 0x07f0, 0x006d
    w[82], w[83], w[84] = 0x306b, 0x7761, 0x6163  # SMART, write cache; LBA48, FLUSH EXT; FUA
    w[85], w[86], w[87] = 0x3469, 0xb441, 0x6163
    sectors = 3907029168
    for i in range(4):
        w[100 + i] = sectors >> (16 * i) & 0xffff
    w[106] = 0x6003                               # valid, 8 logical per physical (4 KiB)
    w[209] = 0x4000
    w[217] = 5400
    w[255] = 0xa5
    b = bytearray(ata_words(w))
    b[511] = (-sum(b[:511])) & 0xff               # integrity word
    return bytes(b)


def real_smart_data():
    b = bytearray(512)
    struct.pack_into("<H", b, 0, 0x10)
    attrs = [(1, 0x2f, 200, 200, 0), (3, 0x27, 177, 175, 6116), (4, 0x32, 100, 100, 120),
             (5, 0x33, 200, 200, 8), (7, 0x2e, 200, 200, 0), (9, 0x32, 53, 53, 34612),
             (10, 0x32, 100, 100, 0), (12, 0x32, 100, 100, 118), (192, 0x32, 200, 200, 40),
             (193, 0x32, 186, 186, 43990), (194, 0x22, 118, 104, 0x002d001d0020),
             (196, 0x32, 199, 199, 1), (197, 0x32, 200, 200, 3), (198, 0x30, 100, 253, 0),
             (199, 0x32, 200, 200, 0), (200, 0x08, 100, 253, 0)]
    for i, (aid, flags, cur, worst, raw) in enumerate(attrs):
        struct.pack_into("<BHBB", b, 2 + 12 * i, aid, flags, cur, worst)
        b[2 + 12 * i + 5:2 + 12 * i + 11] = raw.to_bytes(6, "little")
    b[362] = 0x82
    b[511] = (-sum(b[:511])) & 0xff
    return bytes(b)


def ata_seeds():
    ident, smart = qemu_ata("")
    put("ata_identify", "qemu-ide-hd", ident + smart)
    ident4k, _ = qemu_ata(",physical_block_size=4096")
    put("ata_identify", "qemu-ide-hd-512e", ident4k)
    put("ata_identify", "sata-2tb-512e", real_sata_identify() + real_smart_data())
    b = bytearray(real_sata_identify())
    b[2 * 106:2 * 106 + 2] = struct.pack("<H", 0x5000)       # logical sector size in words 117-118
    b[2 * 117:2 * 119] = struct.pack("<I", 0)                # ... of zero
    b[511] = (-sum(b[:511])) & 0xff                          # with its checksum right
    put("ata_identify", "lsize-zero", b)


# ---- NVMe ----------------------------------------------------------------------------------
class NVMeAdmin:
    def __init__(self, q, dev):
        self.q, self.bar = q, 0xf0000000
        q.cfg_write(dev, 0x10, self.bar)
        q.cfg_write(dev, 0x14, 0)
        q.cfg_write(dev, 0x04, 6)
        self.asq, self.acq, self.buf, self.tail = 0x200000, 0x201000, 0x202000, 0
        self.w32(0x24, 3 << 16 | 3)
        self.w32(0x28, self.asq); self.w32(0x2c, 0)
        self.w32(0x30, self.acq); self.w32(0x34, 0)
        self.w32(0x14, 0x00460001)
        if not self.q.readl(self.bar + 0x1c) & 1:
            raise RuntimeError("nvme not ready")

    def w32(self, o, v): self.q.writel(self.bar + o, v)

    def run(self, opcode, nsid, cdw10, n=4096):
        self.q.write(self.buf, bytes(4096))
        sqe = struct.pack("<IIQQQQIIIIII", opcode | (self.tail + 1) << 16, nsid, 0, 0, self.buf, 0,
                          cdw10, 0, 0, 0, 0, 0)
        self.q.write(self.asq + 64 * self.tail, sqe)
        self.tail = (self.tail + 1) % 4
        self.w32(0x1000, self.tail)
        for _ in range(1000):
            cqe = self.q.read(self.acq + 16 * ((self.tail - 1) % 4), 16)
            if cqe[14] & 1:
                break
        status = struct.unpack("<H", cqe[14:16])[0] >> 1
        if status:
            raise RuntimeError(f"admin {opcode:#x}: status {status:#x}")
        self.w32(0x1004, self.tail)
        return self.q.read(self.buf, n)


def qemu_nvme():
    q = QTest(["-M", "q35",
               "-blockdev", "driver=null-co,node-name=n0,size=" + str(1 << 30),
               "-blockdev", "driver=null-co,node-name=n1,size=" + str(1 << 30),
               "-device", "nvme,id=c0,serial=SEEDNVME01,addr=04.0",
               "-device", "nvme-ns,drive=n0,bus=c0,nsid=1",
               "-device", "nvme-ns,drive=n1,bus=c0,nsid=2,logical_block_size=4096,physical_block_size=4096"])
    try:
        a = NVMeAdmin(q, 4)
        ctrl = a.run(0x06, 0, 1)
        ns1 = a.run(0x06, 1, 0)
        ns2 = a.run(0x06, 2, 0)
        nslist = a.run(0x06, 0, 2)
        health = a.run(0x02, 0xffffffff, (512 // 4 - 1) << 16 | 0x02, 512)
    finally:
        q.close()
    return ctrl, ns1, ns2, nslist, health


def real_nvme():
    """A 1 TB drive shaped like common client SSDs: two LBA formats (512, 4096), MDTS 9, VWC."""
    c = bytearray(4096)
    struct.pack_into("<HH", c, 0, 0x144d, 0x144d)
    c[4:24] = b"S4EWNX0R123456A     "
    c[24:64] = b"Samsung SSD 970 EVO Plus 1TB".ljust(40)
    c[64:72] = b"2B2QEXM7"
    c[72] = 2
    c[73:76] = bytes([0x38, 0x25, 0x00])
    c[77] = 9                                   # MDTS: 2 MiB
    struct.pack_into("<I", c, 80, 0x00010300)   # version 1.3
    struct.pack_into("<I", c, 88, 8000000)      # RTD3E: 8 s
    c[258], c[259], c[260], c[261], c[262] = 0x17, 3, 0x16, 0x0f, 63
    struct.pack_into("<HH", c, 266, 358, 358)   # WCTEMP, CCTEMP (K)
    c[512], c[513] = 0x66, 0x44
    struct.pack_into("<I", c, 516, 1)
    c[525] = 1
    n = bytearray(4096)
    struct.pack_into("<QQQ", n, 0, 1953525168, 1953525168, 123456789)
    n[25] = 1                                   # NLBAF: two formats
    n[26] = 0
    n[104:120] = bytes.fromhex("002538500140a1b2c3d4e5f60718293a")
    n[120:128] = bytes.fromhex("0025385001403a2b")
    struct.pack_into("<I", n, 128, 9 << 16 | 2 << 24)
    struct.pack_into("<I", n, 132, 12 << 16)
    h = bytearray(512)
    h[0] = 0
    struct.pack_into("<H", h, 1, 311)
    h[3], h[4], h[5] = 100, 10, 2
    struct.pack_into("<Q", h, 32, 52384133)
    struct.pack_into("<Q", h, 48, 61234567)
    struct.pack_into("<Q", h, 112, 1802)        # power cycles
    struct.pack_into("<Q", h, 128, 4521)        # power-on hours
    struct.pack_into("<Q", h, 144, 61)          # unsafe shutdowns
    struct.pack_into("<Q", h, 160, 0)           # media errors
    struct.pack_into("<Q", h, 176, 12)          # error log entries
    lst = bytearray(4096)
    struct.pack_into("<I", lst, 0, 1)
    return c, n, lst, h


def nvme_input(ctrl, ns, nslist, health):
    """fuzz_nvme_identify's layout: controller, namespace, active namespace list, health log."""
    return bytes(ctrl) + bytes(ns) + bytes(nslist) + bytes(health)


def nvme_seeds():
    ctrl, ns1, ns2, nslist, health = qemu_nvme()
    put("nvme_identify", "qemu-ns512", nvme_input(ctrl, ns1, nslist, health))
    put("nvme_identify", "qemu-ns4096", nvme_input(ctrl, ns2, nslist, health))
    c, n, lst, h = real_nvme()
    put("nvme_identify", "client-ssd-1tb", nvme_input(c, n, lst, h))
    bad = bytearray(n)
    bad[26] = 5                                  # FLBAS past NLBAF
    put("nvme_identify", "flbas-past-nlbaf", nvme_input(c, bad, lst, h))
    bad = bytearray(n)
    struct.pack_into("<I", bad, 128, 40 << 16)   # LBADS 40
    put("nvme_identify", "lbads-40", nvme_input(c, bad, lst, h))
    bad = bytearray(c)
    bad[77] = 200                                # MDTS far beyond any shift
    put("nvme_identify", "mdts-200", nvme_input(bad, n, lst, h))


# ---- the command line ----------------------------------------------------------------------
def cmdline_seeds():
    """fuzz_cmdline's first byte picks the part (see the fuzzer); the rest is text or keys."""
    lines = [b"read vd1 2048 8", b'set io-timeout=5000', b'ls ov0 "/Users/ann/My Pictures"',
             b"rescue ov0 retries=3 min-rate=1MiB", b"wipe sata0 pattern=0xdeadbeef verify --yes",
             b"cow format vd2 vd1 --yes", b"bench vd1 size=64M depth=8", b"domain ov0 ntfs:*.jpg",
             b"clone ov0 serial=TGT-1 skip=64k,4M passes=copy,trim,interiors infer=off cluster=8s",
             b"rescue ov0 timeout=0x3e8 reverse commit=1000 max-read=2MiB domain=lba:0+100"]
    for i, l in enumerate(lines):
        put("cmdline", f"line{i}", b"\0" + l)
    put("cmdline", "script-cfg", b"\1# cowboot.cfg\r\nset on-error=poweroff\r\n  disks\n\ninfo vd1\nread vd1 0\n")
    put("cmdline", "script-load-options", b"\2set sata-ncq=off;disks;info sata0;poweroff")
    put("cmdline", "keys", b"\3help\x1b[Dx\x7f\x7f\rdisks\r\x1b[A\x1b[A\x1b[B\r\x15abc\x03read vd1\r")
    put("cmdline", "numbers", b"\4" + b"\n".join([b"0x10", b"0777", b"18446744073709551615", b"4KiB",
                                                   b"1TB", b"16T", b"0x", b"99999999999999999999"]))


def main():
    acpi_seeds()
    pci_seeds()
    ata_seeds()
    nvme_seeds()
    cmdline_seeds()
    for d in sorted(os.listdir(SEEDS)):
        if d in ("acpi", "pci_caps", "ata_identify", "nvme_identify", "cmdline"):
            print(d, len(os.listdir(os.path.join(SEEDS, d))), "seeds")


if __name__ == "__main__":
    main()
