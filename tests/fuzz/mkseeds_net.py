#!/usr/bin/env python3
"""Seeds for fuzz_net and fuzz_nbd from real traffic: fuzz_net gets the frames QEMU's user
network sent to the guest in a capture (QEMU's `-object filter-dump,netdev=n0,file=X.pcap`
during DHCP, ping and an NBD attach), plus a SYN-ACK that answers the fuzzer's own
(deterministic) connection and carries an NBD greeting; fuzz_nbd gets what a real nbdkit sends
to a client doing NBD_OPT_GO, a miss, and reads.

    tests/fuzz/mkseeds_net.py capture.pcap        (nbdkit must be installed)
"""
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_MAC = bytes.fromhex("525400123456")


def frames(pcap):
    with open(pcap, "rb") as f:
        data = f.read()
    at, out = 24, []
    while at + 16 <= len(data):
        _, _, incl, _ = struct.unpack_from("<IIII", data, at)
        out.append(data[at + 16:at + 16 + incl])
        at += 16 + incl
    return out


def record(name, fr):
    with open(os.path.join(HERE, "seeds", "net", name), "wb") as f:
        for x in fr:
            f.write(struct.pack(">H", len(x)) + x)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f">{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def lcg(n):
    s, out = 1, []
    for _ in range(n):
        s = (s * 1103515245 + 12345) & 0xffffffff
        out.append(s)
    return out


def syn_ack_seed():
    """The fuzzer draws: DHCP xid, then the TCP port and ISS (kernel/net order)."""
    r = lcg(3)
    port, iss = 49152 + r[1] % 16384, r[2]
    src, dst = bytes([10, 0, 2, 2]), bytes([10, 0, 2, 15])

    def seg(seq, ack, flags, payload=b"", opts=b""):
        hl = 20 + len(opts)
        t = struct.pack(">HHIIBBHHH", 10809, port, seq, ack, (hl // 4) << 4, flags, 65535, 0, 0) + opts + payload
        ph = src + dst + struct.pack(">BBH", 0, 6, len(t))
        t = t[:16] + struct.pack(">H", csum(ph + t)) + t[18:]
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(t), 1, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack(">H", csum(ip)) + ip[12:]
        return GUEST_MAC + bytes.fromhex("525500000202") + b"\x08\x00" + ip + t

    greeting = b"NBDMAGICIHAVEOPT\x00\x03"
    srv = 7000
    return [seg(srv, iss + 1, 0x12, opts=b"\x02\x04\x05\xb4"),
            seg(srv + 1, iss + 1, 0x18, greeting),
            seg(srv + 1 + len(greeting), iss + 1 + 8, 0x11)]


def nbd_seeds():
    img = os.path.join(HERE, "seeds", "nbd", ".img")
    with open(img, "wb") as f:
        f.write(bytes(range(256)) * 4096)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = subprocess.Popen(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "--filter=exportname", "file", img,
                          "exportname=x", "exportname-strict=true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)

    def talk(name, export, reqs):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(struct.pack(">I", 3))
        opt = struct.pack(">I", len(export)) + export + b"\0\0"
        c.sendall(b"IHAVEOPT" + struct.pack(">II", 7, len(opt)) + opt)
        for i, (typ, off, ln) in enumerate(reqs):
            c.sendall(struct.pack(">IHHQQI", 0x25609513, 0, typ, (i + 1) << 8 | i, off, ln) +
                      (bytes(ln) if typ == 1 else b""))
        c.settimeout(1.0)
        got = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                got += d
        except socket.timeout:
            pass
        c.close()
        with open(os.path.join(HERE, "seeds", "nbd", name), "wb") as f:
            f.write(got)

    talk("go_read_write_flush", b"x", [(0, 0, 512), (0, 4096, 1024), (1, 0, 2048), (3, 0, 0)])
    talk("go_unknown_export", b"nosuch", [])
    p.kill()
    os.unlink(img)


if __name__ == "__main__":
    fr = [x for x in frames(sys.argv[1]) if x[:6] in (GUEST_MAC, b"\xff" * 6)]
    record("capture_all", fr)
    for i, x in enumerate(fr[:12]):
        record(f"capture_{i:02d}", [x])
    record("tcp_syn_ack_nbd_greeting", syn_ack_seed())
    nbd_seeds()
