"""QEMU+OVMF harness for cowboot scenarios: boots build/boot.img with its own OVMF variables
and temp dir, talks to the serial console through a unix socket, and always tears down.

    with Machine(cfg="echo hi\n") as m:
        m.wait_prompt()
        out = m.cmd("version")
        check("version names the firmware", "EDK II" in out, out)
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("COWBOOT_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("COWBOOT_BUILD") or os.path.join(ROOT, "build")
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
PROMPT = "cowboot> "
ANSI = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]")

results = {"pass": 0, "fail": 0}


def check(name, cond, detail=""):
    """One test result line for tests/run.py."""
    if cond:
        results["pass"] += 1
        print(f"PASS {name}", flush=True)
    else:
        results["fail"] += 1
        detail = str(detail).replace("\n", "\\n")[-600:]
        print(f"FAIL {name}: {detail}", flush=True)
    return bool(cond)


class BootError(Exception):
    pass


class Machine:
    """One appliance boot. disks: list of dicts with path, transport (virtio|sata|nvme),
    readonly, serial, fmt. cfg: text for \\EFI\\BOOT\\cowboot.cfg. load_options: a command line
    passed through the UEFI shell (startup.nsh launches cowboot.efi with it)."""

    def __init__(self, disks=(), cfg=None, load_options=None, memory=256, extra_args=(),
                 name="qemu", controllers=(), pxe_dir=None, pxe_rom=None, boot_usb=None, boot="virtio"):
        self.tmp = tempfile.mkdtemp(prefix=f"cowboot-{name}-")
        self.disks = list(disks)
        self.cfg = cfg
        self.load_options = load_options
        self.memory = memory
        self.extra_args = list(extra_args)
        self.controllers = list(controllers)   # QEMU args that disks refer to (before them)
        # pxe_dir: boot over PXE from this TFTP dir (BOOTX64.EFI) with no boot disk; pxe_rom:
        # None keeps QEMU's iPXE option ROM, "" uses OVMF's own PXE stack.
        self.pxe_dir = pxe_dir
        self.pxe_rom = pxe_rom
        # boot_usb: a stick image (made by the test) to boot from on a usb-storage of its own
        # qemu-xhci (id bootxhci) instead of build/boot.img on virtio.
        self.boot_usb = boot_usb
        self.boot = boot   # the boot disk's transport: virtio, sata (port 5) or nvme
        self.proc = None
        self.sock = None
        self.buf = ""
        self.transcript = open(os.path.join(self.tmp, "serial.log"), "w")
        self.exitcode = None

    # -- setup ---------------------------------------------------------------------------
    def _boot_image(self):
        img = os.path.join(self.tmp, "boot.img")
        shutil.copy(os.path.join(BUILD, "boot.img"), img)
        def mtools(*args):
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if self.cfg is not None:
            p = os.path.join(self.tmp, "cowboot.cfg")
            with open(p, "w") as f:
                f.write(self.cfg)
            mtools("mcopy", "-i", img, p, "::/EFI/BOOT/cowboot.cfg")
        if self.load_options is not None:
            # OVMF's default boot passes no load options; its UEFI shell does. Without a
            # BOOTX64.EFI the firmware falls back to the shell, which runs startup.nsh.
            mtools("mmove", "-i", img, "::/EFI/BOOT/BOOTX64.EFI", "::/cowboot.efi")
            p = os.path.join(self.tmp, "startup.nsh")
            with open(p, "w") as f:
                f.write(f"fs0:\r\n\\cowboot.efi {self.load_options}\r\n")
            mtools("mcopy", "-i", img, p, "::/startup.nsh")
        return img

    def _disk_args(self, i, d):
        node = f"d{i}"
        fmt = d.get("fmt", "raw")
        ro = ",readonly=on" if d.get("readonly") else ""
        if d.get("blkdebug_rules"):
            rules = os.path.join(self.tmp, f"blkdebug{i}.conf")
            with open(rules, "w") as f:
                f.write(d["blkdebug_rules"])
            spec = f"file=blkdebug:{rules}:{d['path']},format={fmt}"
        elif d.get("nbd_socket"):
            spec = f"file=nbd:unix:{d['nbd_socket']},format=raw"
        else:
            spec = f"file={d['path']},format={fmt}"
        args = ["-drive", f"if=none,id={node},{spec},cache=none{ro}"]
        serial = f",serial={d['serial']}" if d.get("serial") else ""
        if d.get("lbs"):
            serial += (f",logical_block_size={d['lbs']},physical_block_size={d['lbs']}"
                       f",discard_granularity={d['lbs']}")
        elif d.get("pbs"):   # 512e: 512-byte logical sectors on larger physical ones
            serial += f",physical_block_size={d['pbs']}"
        if d.get("props"):   # more properties of the device: "smart_critical_warning=4"
            serial += "," + d["props"]
        t = d.get("transport", "virtio")
        if t == "virtio":
            legacy = ",disable-modern=on,disable-legacy=off" if d.get("legacy") else ""
            args += ["-device", f"virtio-blk-pci,drive={node}{serial}{legacy}"]
        elif t == "sata":
            args += ["-device", f"ide-hd,drive={node},bus={d.get('bus', 'ide.%d' % i)}{serial}"]
        elif t == "nvme":
            args += ["-device", f"nvme,drive={node}{serial or ',serial=NV%d' % i}"]
        elif t == "nvme-ns":   # a namespace of a controller given in `controllers`
            extra = f",logical_block_size={d['lbs']},physical_block_size={d['lbs']}" if d.get("lbs") else ""
            args += ["-device", f"nvme-ns,drive={node},bus={d['bus']},nsid={d['nsid']}{extra}"]
        elif t == "usb":   # usb-storage (BOT) on an xHCI controller given in `controllers` (id xhci)
            port = f",port={d['port']}" if d.get("port") else ""
            dev_id = f",id={d['id']}" if d.get("id") else ""
            args += ["-device", f"usb-storage,drive={node},bus={d.get('bus', 'xhci.0')}{serial}{port}{dev_id}"]
        else:
            raise ValueError(t)
        return args

    def start(self):
        img = None if self.pxe_dir or self.boot_usb else self._boot_image()
        vars_fd = os.path.join(self.tmp, "vars.fd")
        shutil.copy(OVMF_VARS, vars_fd)
        self.serial_path = os.path.join(self.tmp, "serial.sock")
        self.qmp_path = os.path.join(self.tmp, "qmp.sock")
        argv = ["qemu-system-x86_64", "-machine", "q35", "-m", str(self.memory), "-smp", "1",
                "-display", "none", "-nodefaults", "-no-reboot",
                "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,file={vars_fd}",
                "-chardev", f"socket,id=s0,path={self.serial_path},server=on,wait=on",
                "-serial", "chardev:s0",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if self.pxe_dir:
            rom = "" if self.pxe_rom is None else f",romfile={self.pxe_rom}"
            argv += ["-netdev", f"user,id=n0,tftp={self.pxe_dir},bootfile=BOOTX64.EFI",
                     "-device", f"virtio-net-pci,netdev=n0,bootindex=1{rom}"]
        elif self.boot_usb:
            argv += ["-device", "qemu-xhci,id=bootxhci",
                     "-drive", f"if=none,id=boot,file={self.boot_usb},format=raw,cache=none",
                     "-device", "usb-storage,bus=bootxhci.0,port=2,drive=boot,serial=BOOT-STICK,bootindex=1"]
        else:
            dev = {"virtio": "virtio-blk-pci,drive=boot", "sata": "ide-hd,drive=boot,bus=ide.5",
                   "nvme": "nvme,drive=boot,serial=BOOTNVME"}[self.boot]
            argv += ["-drive", f"if=none,id=boot,file={img},format=raw",
                     "-device", f"{dev},bootindex=1"]
        argv += self.controllers
        for i, d in enumerate(self.disks):
            argv += self._disk_args(i, d)
        argv += self.extra_args
        self.qemu_log = open(os.path.join(self.tmp, "qemu.log"), "w")
        self.t_start = time.time()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.qemu_log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(self.serial_path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline or self.proc.poll() is not None:
                    raise BootError("QEMU did not open its serial socket: " + self.qemu_output())
                time.sleep(0.05)
        self.sock.settimeout(0.2)
        return self

    def qemu_output(self):
        self.qemu_log.flush()
        with open(os.path.join(self.tmp, "qemu.log")) as f:
            return f.read()[-2000:]

    # -- serial conversation --------------------------------------------------------------
    def _pump(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            data = b""
        if not data:
            if self.proc.poll() is not None:
                return None
            time.sleep(0.05)
            return False
        text = data.decode("latin-1")
        self.transcript.write(text)
        self.transcript.flush()
        self.buf += ANSI.sub("", text).replace("\r", "")
        return True

    def wait_for(self, pattern, timeout=30):
        """Consumes output up to and including the first match; returns the match."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                self.last_before = self.buf[:m.start()]
                self.buf = self.buf[m.end():]
                return m
            if time.time() > deadline:
                raise TimeoutError(f"no {pattern!r} within {timeout}s; tail: {self.buf[-800:]!r}")
            if self._pump() is None:
                # Drain whatever is left, then give up: the machine is gone.
                m = rx.search(self.buf)
                if m:
                    continue
                raise BootError(f"QEMU exited ({self.proc.returncode}) before {pattern!r}; "
                                f"tail: {self.buf[-800:]!r}")

    def wait_prompt(self, timeout=60):
        self.wait_for(re.escape(PROMPT), timeout)
        self.t_prompt = time.time()

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        # Slowly: the appliance polls a 16-byte FIFO, so a burst could overrun it.
        for i in range(0, len(data), 8):
            self.sock.sendall(data[i:i + 8])
            time.sleep(0.01)

    def send(self, line):
        self.send_raw(line + "\r")

    def cmd(self, line, timeout=30):
        """Runs a command at the prompt; returns its output (without the echo and prompt)."""
        self.send(line)
        self.wait_for(re.escape(line) + r"\n", timeout)
        self.wait_for(re.escape(PROMPT), timeout)
        return self.last_before

    def wait_exit(self, timeout=30):
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            self._pump()
        if self.proc.poll() is None:
            raise TimeoutError("QEMU did not exit")
        while self._pump():
            pass
        self.exitcode = self.proc.returncode
        return self.exitcode

    def poweroff_and_wait(self, timeout=30):
        self.send("poweroff")
        return self.wait_exit(timeout)

    def kill(self):
        """A power cut: SIGKILL, nothing is flushed by QEMU."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def qmp(self, command, **arguments):
        import json
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.qmp_path)
        f = s.makefile("rw")
        json.loads(f.readline())
        f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
        f.flush()
        json.loads(f.readline())
        f.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        f.flush()
        while True:
            r = json.loads(f.readline())
            if "return" in r or "error" in r:
                s.close()
                return r

    def send_keys(self, chords, hold_ms=30, gap_s=0.03):
        """Presses keys on the machine's keyboard through QMP send-key (the q35 PS/2 keyboard
        unless another has focus): each chord is a list of QEMU qcodes held together, e.g.
        [["shift", "a"], ["ret"]]. One QMP connection for them all."""
        import json
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.qmp_path)
        f = s.makefile("rw")
        json.loads(f.readline())
        for cmd in [{"execute": "qmp_capabilities"}] + [
                {"execute": "send-key", "arguments": {
                    "keys": [{"type": "qcode", "data": k} for k in chord], "hold-time": hold_ms}}
                for chord in chords]:
            f.write(json.dumps(cmd) + "\n")
            f.flush()
            while True:
                r = json.loads(f.readline())
                if "error" in r:
                    s.close()
                    raise BootError(f"QMP {cmd}: {r['error']}")
                if "return" in r:
                    break
            if cmd["execute"] == "send-key":
                time.sleep(hold_ms / 1000 + gap_s)
        s.close()

    # -- teardown --------------------------------------------------------------------------
    def close(self, failed=False):
        self.kill()
        if self.sock:
            self.sock.close()
        self.transcript.close()
        self.qemu_log.close() if hasattr(self, "qemu_log") else None
        if failed or os.environ.get("COWBOOT_KEEP"):
            with open(os.path.join(self.tmp, "serial.log"), errors="replace") as f:
                sys.stdout.write("---- serial transcript (tail) ----\n" + f.read()[-3000:] + "\n")
            print(f"(kept {self.tmp})")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, et, ev, tb):
        if et is not None:
            check(f"scenario ran to the end ({et.__name__})", False, ev)
        self.close(failed=et is not None)
        return et is not None and issubclass(et, (TimeoutError, BootError))


def make_pattern_disk(path, size_bytes, tag="disk"):
    """Every 512-byte sector starts with '<tag> lba <n>' so reads can be checked by eye and code."""
    with open(path, "wb") as f:
        for lba in range(size_bytes // 512):
            head = f"{tag} lba {lba}\n".encode()
            f.write(head + bytes((lba + i) & 0xff for i in range(512 - len(head))))


def finish():
    print(f"{results['pass']} passed, {results['fail']} failed")
    sys.exit(1 if results["fail"] else 0)


def host_crc(path, lba, count, lsize=512):
    """zlib's CRC-32 of sectors of a host image, to compare with the appliance's `sum`."""
    import zlib
    with open(path, "rb") as f:
        f.seek(lba * lsize)
        return "%08x" % zlib.crc32(f.read(count * lsize))


def sha256_file(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def sum_matches(m, disk, lba, count, path, lsize=512, timeout=60):
    """Whether the appliance's `sum` of sectors [lba, lba+count) of `disk` equals the CRC-32 of
    the same sectors of the host image `path` (host_crc), and the command's output."""
    out = m.cmd(f"sum {disk} {lba} {count}", timeout)
    got = re.search(r"crc32 ([0-9a-f]{8})", out)
    return bool(got and got.group(1) == host_crc(path, lba, count, lsize)), out


def check_sum(m, name, disk, lba, count, path, lsize=512, timeout=60):
    """sum_matches as a check named `name`; returns the command's output."""
    ok, out = sum_matches(m, disk, lba, count, path, lsize, timeout)
    check(name, ok, out)
    return out


def source_and_cow(prefix, size, cow_bytes, tag="source"):
    """A scenario's temp dir with a pattern source image of `size` bytes (make_pattern_disk, its
    sectors tagged `tag`) and an empty cow image of `cow_bytes`: (tmp, src, cow, the source's
    SHA-256 for the closing check that the source never changed)."""
    tmp = tempfile.mkdtemp(prefix=f"cowboot-{prefix}-")
    src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")
    make_pattern_disk(src, size, tag)
    with open(cow, "wb") as f:
        f.truncate(cow_bytes)
    return tmp, src, cow, sha256_file(src)


def blkdebug_read_error(sector):
    """blkdebug rules (testing.md's recipe) making every read touching `sector` fail with EIO."""
    return (f'[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "5"\n'
            f'sector = "{sector}"\nonce = "off"\n')


def nbdkit_file_plugin(body, threads="PARALLEL", writable=True):
    """The source of an nbdkit python plugin serving the file given as file=...: the common
    head (config, open, size) with `threads` as its thread model, then `body` (its pread and
    whatever else it changes)."""
    mode = "os.O_RDWR" if writable else "os.O_RDONLY"
    return ("import builtins, os, time\nimport nbdkit\nAPI_VERSION = 2\ncfg = {}\n"
            "def config(k, v): cfg[k] = v\n"
            f"def thread_model(): return nbdkit.THREAD_MODEL_{threads}\n"
            f"def open(readonly): return os.open(cfg[\"file\"], {mode})\n"
            "def close(fd): os.close(fd)\n"
            "def get_size(fd): return os.fstat(fd).st_size\n" + body)


def start_nbdkit(sock, args, also=None):
    """nbdkit in the foreground on unix socket `sock` with plugin/filter `args`; returns the
    process once the socket (and the file `also`, e.g. a control socket) exists."""
    proc = subprocess.Popen(["nbdkit", "-f", "-U", sock] + list(args),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(sock) and (also is None or os.path.exists(also)):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise BootError(f"nbdkit did not start: {' '.join(args)}")


class PausedNbd:
    """nbdkit serving `path` on a unix socket through its pause filter: pause() holds every
    request (a hung drive), resume() lets them go. A context manager that stops nbdkit."""

    def __init__(self, path, tmpdir):
        self.sock = os.path.join(tmpdir, "nbd.sock")
        self.ctl_path = os.path.join(tmpdir, "pause.sock")
        self.proc = start_nbdkit(self.sock, ["--filter=pause", "file", path,
                                             f"pause-control={self.ctl_path}"], also=self.ctl_path)
        self.ctl = socket.socket(socket.AF_UNIX)
        self.ctl.connect(self.ctl_path)

    def pause(self):
        self.ctl.sendall(b"p")
        return self.ctl.recv(1) == b"P"

    def resume(self):
        self.ctl.sendall(b"r")
        return self.ctl.recv(1) == b"R"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.ctl.close()
        self.proc.terminate()
        self.proc.wait()
        return False


def check_hung_read(m, disk, lba, tag, extra_wait=None):
    """A read held by a paused backend must time out at io-timeout, the driver recover, and the
    next read work. `m` was booted with the disk on `PausedNbd`; `extra_wait` is a regex the
    recovery must log (e.g. the NVMe Abort)."""
    m.cmd("set io-timeout=1500")
    check("nbdkit paused", m.nbd.pause())
    m.send(f"read {disk} {lba}")
    m.wait_for(r"timed out after 1500 ms, resetting", 30)
    check(f"a hung {tag} read times out at its deadline", True)
    if extra_wait:
        m.wait_for(extra_wait, 10)
        check(f"the recovery logs {extra_wait!r}", True)
    time.sleep(1)
    m.nbd.resume()   # QEMU's device reset waits for the held request: let it finish
    m.wait_prompt(60)
    check(f"the hung {tag} read fails with a timeout", "command timed out" in m.last_before, m.last_before)
    out = m.cmd(f"read {disk} {lba + 1}")
    check(f"{tag} reads work again after the recovery", f"lba {lba + 1}" in out, out[:200])
    return out


class NbdServer:
    """What the scenarios' nbdkit servers share: the process `proc`, stop() (killed: the drive
    vanishes), stats() (the plugin's counters at `stats_path`, `no_stats` before it wrote any)
    and a context manager that stops the server."""
    proc = None
    stats_path = None
    no_stats = {"reads": 0, "bad_reads": 0, "bytes": 0}

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stats(self):
        import json
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return dict(self.no_stats)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class FailingNbd(NbdServer):
    """nbdkit serving `path` through tests/qemu/failing_disk.py with `zones` (a list of dicts:
    start, count in sectors; kind bad|weak|slow|hang; tries; delay_ms). stop() and start()
    make the drive vanish and come back; stats() are the plugin's read counters."""

    def __init__(self, path, zones, tmpdir, name="fail"):
        import json
        self.path, self.tmpdir = path, tmpdir
        self.sock = os.path.join(tmpdir, f"{name}.sock")
        self.zones_path = os.path.join(tmpdir, f"{name}.zones.json")
        self.stats_path = os.path.join(tmpdir, f"{name}.stats.json")
        with open(self.zones_path, "w") as f:
            json.dump(zones, f)
        self.proc = None
        self.start()

    def start(self, path=None):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        plugin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "failing_disk.py")
        self.proc = start_nbdkit(self.sock, ["python", plugin, f"file={path or self.path}",
                                             f"zones={self.zones_path}", f"stats={self.stats_path}"])


def parse_mapfile(text):
    """The blocks of a ddrescue mapfile: [(pos, size, status)] in bytes."""
    blocks, seen_status = [], False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if not seen_status:
            seen_status = True
            continue
        if len(parts) >= 3 and parts[0].startswith("0x"):
            blocks.append((int(parts[0], 16), int(parts[1], 16), parts[2]))
    return blocks


def map_text(out):
    """The mapfile part of a `map` command's output (from its first comment line)."""
    i = out.find("# Mapfile")
    return out[i:] if i >= 0 else out
