#!/usr/bin/env python3
"""Disks whose partition tables (or NTFS boot sectors) are each broken in one way, as damaged or
hostile disks arrive at a rescue bench. Used by test_hostile_disks.py (QEMU) and to write the
partition parser's fuzz seeds (`hostile_disks.py --seeds DIR`, small disks).

Each variant: name -> (builder, what the appliance must say of it, partitions it must list)."""
import os
import struct
import sys
import uuid
import zlib

BASIC_DATA = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7").bytes_le
LINUX = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4").bytes_le


class Disk:
    """Sparse sectors of a disk image: {lba: bytes}, written at their offsets."""

    def __init__(self, sectors, lbs, entries=128):
        self.sectors, self.lbs, self.data, self.entries = sectors, lbs, {}, entries

    def put(self, lba, b):
        for i in range(0, len(b), self.lbs):
            self.data[lba + i // self.lbs] = bytes(b[i:i + self.lbs]).ljust(self.lbs, b"\0")

    def write(self, path):
        with open(path, "wb") as f:
            f.truncate(self.sectors * self.lbs)
            for lba, b in sorted(self.data.items()):
                f.seek(lba * self.lbs)
                f.write(b)


def mbr_sector(entries, lbs=512):
    """entries: (boot, type, start, count) up to four."""
    s = bytearray(512)
    for i, (boot, typ, start, count) in enumerate(entries):
        s[446 + 16 * i:462 + 16 * i] = struct.pack("<B3sB3sII", boot, b"\0\0\0", typ, b"\xff\xff\xff",
                                                   start, count)
    s[510:512] = b"\x55\xaa"
    return bytes(s)


def gpt(d, parts, esize=128, primary=None, backup=None, mbr=True):
    """A GPT on d with parts [(first, last, type)]. primary/backup: functions that may change the
    header's fields (a dict) before its CRC is taken, or return raw bytes to store instead."""
    lbs, n, count = d.lbs, d.sectors, d.entries
    es = (count * esize + lbs - 1) // lbs if count * esize < (1 << 24) else 4
    ents = bytearray(max(count * esize, 0) if count * esize < (1 << 24) else 0)
    for i, (first, last, typ) in enumerate(parts):
        e = typ + uuid.UUID(int=i + 1).bytes_le + struct.pack("<QQQ", first, last, 0)
        ents[i * esize:i * esize + len(e)] = e
    ecrc = zlib.crc32(bytes(ents))
    first_usable, last_usable = 2 + es, n - 2 - es

    def header(my, alt, entries_lba, change):
        f = dict(sig=b"EFI PART", rev=0x10000, hsize=92, my=my, alt=alt, first=first_usable,
                 last=last_usable, guid=uuid.UUID(int=7).bytes_le, ents=entries_lba, count=count,
                 esize=esize, ecrc=ecrc, crc=None, tail=b"")
        raw = change(f) if change else None
        if isinstance(raw, (bytes, bytearray)):
            return raw
        h = struct.pack("<8sIIIIQQQQ16sQIII", f["sig"], f["rev"], f["hsize"], 0, 0, f["my"], f["alt"],
                        f["first"], f["last"], f["guid"], f["ents"], f["count"], f["esize"], f["ecrc"])
        h = (h + f["tail"]).ljust(lbs, b"\0")
        crc = f["crc"] if f["crc"] is not None else zlib.crc32(h[:f["hsize"]]) if f["hsize"] <= lbs else 0
        return h[:16] + struct.pack("<I", crc) + h[20:]
    if mbr:
        d.put(0, mbr_sector([(0, 0xEE, 1, min(n - 1, 0xFFFFFFFF))]))
    d.put(1, header(1, n - 1, 2, primary))
    d.put(2, ents)
    d.put(n - 1 - es, ents)
    d.put(n - 1, header(n - 1, 1, n - 1 - es, backup))


def ntfs_boot(spc=8, bps=512, mft=4, total=2000):
    """An NTFS boot sector with the given geometry (absurd values included)."""
    b = bytearray(512)
    b[0:3] = b"\xeb\x52\x90"
    b[3:11] = b"NTFS    "
    struct.pack_into("<HB", b, 11, bps, spc)
    struct.pack_into("<QQQ", b, 40, total - 1, mft, 2)
    b[64] = 0xF6   # 1024-byte records
    b[68] = 0x01
    b[510:512] = b"\x55\xaa"
    return bytes(b)


# ---- the variants -----------------------------------------------------------------------------

def hdrsize_4096(d):
    """The crash of issue 13: a header that claims 4096 bytes, garbage after the signature."""
    def bad(f):
        f["hsize"] = 4096
        f["tail"] = bytes((i * 37 + 11) & 0xFF for i in range(d.lbs - 92))
        f["crc"] = 0x12345678
    gpt(d, [(d.sectors // 4, d.sectors // 2, BASIC_DATA)], primary=bad)


def entry_size_huge(d):
    def big(f):
        f["esize"] = 65536
    gpt(d, [(d.sectors // 4, d.sectors // 2, BASIC_DATA)], primary=big, backup=big)


def count_overflow(d):
    """count * size wraps to 128 in 32 bits."""
    def wrap(f):
        f["count"] = 0x02000001
    gpt(d, [(d.sectors // 4, d.sectors // 2, BASIC_DATA)], primary=wrap, backup=wrap)


def bad_entries(d):
    q = d.sectors // 8
    gpt(d, [(2 * q, 3 * q, BASIC_DATA),               # 1: good
            (4 * q, d.sectors + 100, LINUX),          # 2: past the end of the disk
            (2 * q + 10, 2 * q + 20, LINUX),          # 3: inside partition 1
            (6 * q, 5 * q, LINUX),                    # 4: ends before it starts
            (5 * q, 6 * q, LINUX)])                   # 5: good


def backup_into_primary(d):
    """The primary's CRC is broken; the backup, valid itself, points its array into the primary."""
    def crc(f):
        f["crc"] = 1
    def into(f):
        f["ents"] = 2
    gpt(d, [(d.sectors // 4, d.sectors // 2, BASIC_DATA)], primary=crc, backup=into)


def mbr_loop(d):
    """An extended partition whose second EBR links back to the first; partition 3 off the disk."""
    n, lbs = d.sectors, d.lbs
    ext, k = n // 2, n // 8
    d.put(0, mbr_sector([(0x80, 0x07, 2, n // 4), (0, 0x0F, ext, n // 2 - 1),
                         (0, 0x83, n - 10, 1000)]))
    e1 = bytearray(mbr_sector([(0, 0x83, 1, k - 1), (0, 0x05, k, k)]))
    e2 = bytearray(mbr_sector([(0, 0x83, 1, k - 1), (0, 0x05, 0, k)]))   # back to the first EBR
    d.put(ext, bytes(e1).ljust(lbs, b"\0"))
    d.put(ext + k, bytes(e2).ljust(lbs, b"\0"))


def protective_only(d):
    d.put(0, mbr_sector([(0, 0xEE, 1, min(d.sectors - 1, 0xFFFFFFFF))]))


def hybrid(d):
    q = d.sectors // 4
    gpt(d, [(q, 2 * q, BASIC_DATA)], mbr=False)
    d.put(0, mbr_sector([(0, 0xEE, 1, q - 1), (0x80, 0x07, q, q)]))


def ntfs_absurd(d):
    """A GPT whose two partitions hold NTFS boot sectors with absurd geometry."""
    q = d.sectors // 8
    gpt(d, [(q, 2 * q, BASIC_DATA), (3 * q, 4 * q, BASIC_DATA)])
    d.put(q, ntfs_boot(spc=0x80).ljust(d.lbs, b"\0"))          # 2^128 sectors a cluster
    # Plausible geometry, but the MFT lies at the volume's last cluster: its records are zeros.
    d.put(3 * q, ntfs_boot(spc=1, bps=d.lbs, mft=q - 2, total=q).ljust(d.lbs, b"\0"))


# name: (builder, messages the appliance must log, partitions it must list, must not list)
VARIANTS = {
    "hdrsize": (hdrsize_4096, ["primary GPT header", ", using the backup"], [1], []),
    "entsize": (entry_size_huge, ["GPT ignored: primary entry size 65536 out of range"], [], [1]),
    "count": (count_overflow, ["GPT ignored: primary 33554433 entries of 128 bytes: too many"], [], [1]),
    "entries": (bad_entries, ["GPT entry 2 (LBA", "GPT entry 3 overlaps partition 1: ignored",
                              "GPT entry 4 ends before it starts: ignored"], [1, 5], [2, 3, 4]),
    "backup": (backup_into_primary, ["GPT ignored: primary header CRC mismatch, backup entry array at LBA 2"],
               [], [1]),
    "mbrloop": (mbr_loop, ["MBR partition 3 (1000 sectors at LBA", "EBR link 2 goes backwards (a loop)"],
                [1, 5, 6], [3]),
    "protective": (protective_only, ["GPT ignored: primary header missing, backup header missing"], [], [1]),
    "hybrid": (hybrid, ["hybrid MBR: its partitions are ignored, the GPT's are used"], [1], [2]),
    "ntfs": (ntfs_absurd, [], [1, 2], []),
}


def make(path, name, size, lbs, entries=128):
    d = Disk(size // lbs, lbs, entries)
    VARIANTS[name][0](d)
    d.write(path)
    return d


def seed(name, lbs):
    """A fuzz input for tests/fuzz/fuzz_parttab.c: a sector-size byte, a byte of zero sectors in
    the middle, then the disk's head and tail halves. A small disk with a 4-entry GPT."""
    d = Disk(64, lbs, 4)
    VARIANTS[name][0](d)
    half = 0
    while half < 32 and any(lba not in range(half) and lba not in range(64 - half, 64) for lba in d.data):
        half += 1
    body = b"".join(d.data.get(lba, bytes(lbs)) for lba in list(range(half)) + list(range(64 - half, 64)))
    return bytes([0 if lbs == 512 else 1, 64 - 2 * half]) + body


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "--seeds":
        sys.exit("usage: hostile_disks.py --seeds DIR")
    os.makedirs(sys.argv[2], exist_ok=True)
    for name in VARIANTS:
        for lbs in (512, 4096):
            with open(os.path.join(sys.argv[2], f"{name}-{lbs}"), "wb") as f:
                f.write(seed(name, lbs))


if __name__ == "__main__":
    main()
