#!/usr/bin/env python3
"""Generates the demo disks for `make run`: a 64 MiB source with a GPT and recognisable data,
an empty 96 MiB disk for its cow, and a blank 64 MiB spare (a clone target). Existing files are kept."""
import os
import struct
import sys
import uuid
import zlib

SECTOR = 512


def gpt_disk(path, size):
    """A protective MBR, a primary and backup GPT with one partition, and patterned data."""
    sectors = size // SECTOR
    with open(path, "wb") as f:
        f.truncate(size)
        mbr = bytearray(SECTOR)
        mbr[446:462] = struct.pack("<BBBBBBBBII", 0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1,
                                   min(sectors - 1, 0xFFFFFFFF))
        mbr[510:512] = b"\x55\xaa"
        f.seek(0)
        f.write(mbr)
        first, last = 2048, sectors - 34
        entry = bytearray(128)
        entry[0:16] = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7").bytes_le  # basic data
        entry[16:32] = uuid.uuid4().bytes_le
        entry[32:48] = struct.pack("<QQ", first, last)
        entry[56:56 + 2 * len("demo data")] = "demo data".encode("utf-16-le")
        entries = bytes(entry) + bytes(128 * 127)
        ecrc = zlib.crc32(entries)
        disk_guid = uuid.uuid4().bytes_le

        def header(my, alt, entries_lba):
            h = struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, my, alt,
                            34, sectors - 34, disk_guid, entries_lba, 128, 128, ecrc)
            crc = zlib.crc32(h)
            return (h[:16] + struct.pack("<I", crc) + h[20:]).ljust(SECTOR, b"\0")
        f.seek(SECTOR)
        f.write(header(1, sectors - 1, 2))
        f.write(entries)
        f.seek((sectors - 33) * SECTOR)
        f.write(entries)
        f.write(header(sectors - 1, 1, sectors - 33))
        # Recognisable data: every sector of the partition names itself.
        f.seek(first * SECTOR)
        for lba in range(first, min(last, first + 16384)):
            f.write(f"cowboot demo source, lba {lba}\n".encode().ljust(SECTOR, b"."))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/demo"
    os.makedirs(out, exist_ok=True)
    targets = [("source.img", 64 << 20, True), ("cow.img", 96 << 20, False),
               ("spare.img", 64 << 20, False)]
    for name, size, pattern in targets:
        path = os.path.join(out, name)
        if os.path.exists(path) and os.path.getsize(path) == size:
            continue
        if pattern:
            gpt_disk(path, size)
        else:
            with open(path, "wb") as f:
                f.truncate(size)
        print(f"made {path} ({size >> 20} MiB)")


if __name__ == "__main__":
    main()
