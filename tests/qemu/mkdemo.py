#!/usr/bin/env python3
"""Generates the demo disks for `make run`: a 64 MiB source with a GPT and an NTFS volume of a user's files,
an empty 96 MiB disk for its cow, and a blank 64 MiB spare (a clone target). Existing files are kept."""
import os
import struct
import subprocess
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
        es = 128 * 128 // SECTOR   # sectors of the entry array (32 with 512-byte sectors, 4 with 4Kn)
        first, last = 2048, sectors - 2 - es
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
                            2 + es, sectors - 2 - es, disk_guid, entries_lba, 128, 128, ecrc)
            crc = zlib.crc32(h)
            return (h[:16] + struct.pack("<I", crc) + h[20:]).ljust(SECTOR, b"\0")
        f.seek(SECTOR)
        f.write(header(1, sectors - 1, 2))
        f.write(entries)
        f.seek((sectors - 1 - es) * SECTOR)
        f.write(entries)
        f.write(header(sectors - 1, 1, sectors - 1 - es))   # the backup header: the last LBA
        # Recognisable data: every sector of the partition names itself.
        f.seek(first * SECTOR)
        for lba in range(first, min(last, first + 16384)):
            f.write(f"cowboot demo source, lba {lba}\n".encode().ljust(SECTOR, b"."))


def ntfs_disk(path, size, files, label="COWBOOT"):
    """A GPT disk whose partition holds an NTFS volume (mkntfs) with `files` ({"dir/name": bytes}).
    Directories need a FUSE mount (ntfs-3g); without /dev/fuse only top-level files can be made
    (ntfscp), and a file in a directory raises. Returns the partition's first LBA."""
    import shutil
    import subprocess
    import tempfile
    gpt_disk(path, size)
    sectors = size // SECTOR
    first, last = 2048, sectors - 2 - 128 * 128 // SECTOR
    tmp = tempfile.mkdtemp(prefix="cowboot-ntfs-")
    try:
        part = os.path.join(tmp, "part.img")
        with open(part, "wb") as f:
            f.truncate((last - first + 1) * SECTOR)
        subprocess.run(["mkntfs", "-F", "-Q", "-q", "-s", str(SECTOR), "-c", "4096", "-p", str(first),
                        "-H", "16", "-S", "63", "-L", label, part], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        mounted = subprocess.run(["ntfs-3g", part, mnt], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL).returncode == 0
        try:
            for name, data in files.items():
                if mounted:
                    dest = os.path.join(mnt, name)
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    with open(dest, "wb") as f:
                        f.write(data)
                else:
                    if "/" in name:
                        raise RuntimeError(f"{name}: directories need an ntfs-3g FUSE mount")
                    src = os.path.join(tmp, "file")
                    with open(src, "wb") as f:
                        f.write(data)
                    subprocess.run(["ntfscp", "-f", part, src, name], check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            if mounted:
                subprocess.run(["umount", mnt], check=True)
        with open(part, "rb") as src, open(path, "r+b") as dst:
            dst.seek(first * SECTOR)
            shutil.copyfileobj(src, dst, 1 << 20)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return first


def demo_files():
    """A small user's disk: documents and pictures (deterministic bytes, sizes of real ones)."""
    def blob(n, seed):
        return bytes((i * 2654435761 + seed * 97) >> 13 & 0xFF for i in range(n))
    # In this order the demo's bad sectors (tests/qemu/run_demo.py) fall in a picture.
    return {
        "Windows/System32/config.sys": blob(9000000, 6),
        "Users/bob/Music/song.mp3": blob(6000000, 5),
        "Users/ann/Documents/letter.txt": b"Dear Bob,\nthe disk is failing; cowboot is rescuing it.\n",
        "Users/ann/Documents/taxes-2025.pdf": blob(420000, 1),
        "Users/ann/Documents/thesis.docx": blob(1300000, 2),
        "Users/ann/Pictures/cat.jpg": blob(1700000, 4),
        "Users/ann/Pictures/beach.jpg": blob(2100000, 3),
    }


def demo_source(path, size):
    """The demo source: an NTFS volume with a user's files when mkntfs is there (directories need
    an ntfs-3g mount; without one the files go to the root), else recognisable sectors."""
    files = demo_files()
    try:
        try:
            ntfs_disk(path, size, files, label="DEMO")
        except RuntimeError:   # no FUSE: top-level files only
            ntfs_disk(path, size, {k.split("/")[-1]: v for k, v in files.items()}, label="DEMO")
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"mkdemo: no NTFS volume on the demo source ({e}); a plain GPT disk instead")
        gpt_disk(path, size)


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
            demo_source(path, size)
        else:
            with open(path, "wb") as f:
                f.truncate(size)
        print(f"made {path} ({size >> 20} MiB)")


if __name__ == "__main__":
    main()
