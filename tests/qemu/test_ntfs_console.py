#!/usr/bin/env python3
"""NTFS in the appliance, as a user drives it: `ls` through an overlay, `domain ov0 ntfs:<glob>`
and `domain ov0 ntfs` then `rescue`. Checked from the host: the cow alone (exported without the
source) must hold what the domain promised, readable by ntfs-3g's ntfscat, and nothing else."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import BUILD, Machine, check, finish, parse_mapfile, map_text, sha256_file  # noqa: E402
from mkdemo import ntfs_disk  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cowboot-ntfscon-")
src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")
rnd = lambda n, seed: bytes((i * 131 + seed * 7 + (i >> 9)) & 0xFF for i in range(n))  # noqa: E731
files = {
    "Users/ann/Documents/a.txt": b"hello from ann\n",
    "Users/ann/Documents/photo.jpg": rnd(300000, 1),
    "Users/ann/Pictures/holiday.jpg": rnd(180000, 2),
    "Users/ann/Documents/report.docx": rnd(120000, 3),
    "Windows/big.bin": rnd(3 << 20, 4),
    "readme.txt": b"cowboot ntfs test\n" * 100,
}
try:
    first = ntfs_disk(src, 64 << 20, files)
except RuntimeError as e:   # no FUSE here: directories cannot be made
    files = {k.split("/")[-1]: v for k, v in files.items()}
    first = ntfs_disk(src, 64 << 20, files)
with open(cow, "wb") as f:
    f.truncate(96 << 20)
src_hash = sha256_file(src)
cowtool = os.path.join(BUILD, "cowtool")
in_dirs = "Users/ann/Documents/a.txt" in files


def runs(name):
    """The file's runs (lcn, clusters) as ntfs-3g's ntfsinfo reads them from the source."""
    part = os.path.join(tmp, "srcpart.img")
    if not os.path.exists(part):
        subprocess.run(["dd", f"if={src}", f"of={part}", "bs=512", f"skip={first}", "status=none"], check=True)
    out = subprocess.run(["ntfsinfo", "-v", "-F", "/" + name, part], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    data = out[out.index("Dumping attribute $DATA"):]
    return [(int(lcn, 16), int(n, 16)) for vcn, lcn, n in re.findall(r"^\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)$",
                                                                        data, re.M)]


def cow_only_file(name):
    """The file's data as an image of the cow alone holds it (absent ranges read as zeros), at
    the clusters ntfs-3g says the file has: an independent reading of the same volume."""
    img = os.path.join(tmp, "cowonly.img")
    subprocess.run([cowtool, "export", cow, img], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    got = b""
    with open(img, "rb") as f:
        rl = runs(name)
        for lcn, n in rl:
            f.seek(first * 512 + lcn * 4096)
            got += f.read(n * 4096)
        if not rl:   # resident: the data is inside its MFT record, somewhere in the image
            f.seek(0)
            got = files[name] if files[name] in f.read() else b""
    os.remove(img)
    return got[:len(files[name])]


def finished_bytes(m):
    return sum(s for p, s, st in parse_mapfile(map_text(m.cmd("map ov0", 60))) if st == "+")


with Machine(disks=[dict(path=src, serial="NTFS-SRC", readonly=True), dict(path=cow, serial="NTFS-COW")],
             name="ntfscon") as m:
    m.wait_prompt(60)
    m.cmd("cow format vd2 vd1 --yes", 60)
    out = m.cmd("cow open vd1 vd2", 60)
    check("the overlay opens over the NTFS disk", "ov0: vd2 over vd1" in out, out)
    out = m.cmd("ls ov0 /", 60)
    check("ls lists the volume's root", "readme.txt" in out and (not in_dirs or re.search(r"^d .* Users/$", out, re.M)), out)
    check("ls hides the volume's own metadata files", "$MFT" not in out, out)
    docs = "1:/Users/ann/Documents" if in_dirs else "1:/"
    out = m.cmd(f"ls ov0 {docs}", 60)
    check("ls of a directory by partition and path shows names and sizes",
          re.search(r"^- +300000 .* photo\.jpg$", out, re.M) and re.search(r"^- +15 .* a\.txt$", out, re.M), out)
    out = m.cmd("ls ov0 /no/such/dir", 60)
    check("ls of a missing path says so", "ls: /no/such/dir: no such object" in out, out)
    out = m.cmd("ls ov0 7:/", 60)
    check("ls of a partition without NTFS says so", "no NTFS volume in partition 7" in out, out)
    meta = finished_bytes(m)
    check("what ls read is rescued on the way, and only that", 0 < meta < 4 << 20, f"{meta} bytes")

    out = m.cmd("domain ov0 ntfs:", 60)
    check("an empty glob is refused", "needs a glob" in out, out)
    out = m.cmd("domain ov0 ntfs:*.jpg", 120)
    check("domain ntfs:*.jpg sets a domain in priority parts",
          re.search(r"ov0: the next rescue covers \d+ sectors in \d+ ranges \(in parts, by priority\)", out), out)
    out = m.cmd("rescue ov0", 60)
    check("the rescue over the domain starts", "rescue started" in out and ", domain" in out, out)
    out = m.cmd("wait ov0", 600)
    check("it finishes, part by part", "rescue finished" in out, out)
    after_jpg = finished_bytes(m)
    m.cmd("cow sync ov0", 60)
    jpgs = [k for k in files if k.endswith(".jpg")]
    check("the cow alone holds every .jpg, as ntfscat reads it",
          all(cow_only_file(k) == files[k] for k in jpgs), jpgs)
    check("and not the other files' data", cow_only_file(next(k for k in files if k.endswith("big.bin"))) != files[
          next(k for k in files if k.endswith("big.bin"))])
    check("the .jpg domain rescued little more than the pictures and metadata",
          after_jpg < meta + 2 * (300000 + 180000) + (4 << 20), f"{after_jpg} bytes")

    out = m.cmd("domain ov0 ntfs", 120)
    check("domain ntfs covers the used clusters", re.search(r"covers \d+ sectors", out), out)
    m.cmd("rescue ov0", 60)
    out = m.cmd("wait ov0", 600)
    check("the used-cluster rescue finishes", "rescue finished" in out, out)
    total = finished_bytes(m)
    m.cmd("cow sync ov0", 60)
    check("now the cow alone holds every file", all(cow_only_file(k) == v for k, v in files.items()))
    check("free space is never read: well under the disk's 64 MiB", total < 40 << 20, f"{total} bytes")
    m.poweroff_and_wait(60)
check("the source image is unchanged", sha256_file(src) == src_hash)
finish()
