#!/usr/bin/env python3
"""The dead-head drive's geometry, read from the same one-line spec as the C model
(tests/lib/deadhead.c): size, heads (2-8), dead heads, zones (length:band, each zone starting
with head 0, the last running to the end), scattered bad sectors (start+count) and a weak area
(start+count:tries). `python3 deadhead_geometry.py ranges SPEC` prints the unreadable ranges
(start end, sectors), which the unit test compares with the C model's."""
import sys

SECTOR = 512
_MUL = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "s": SECTOR}


def _size(t):
    if t and t[-1] in _MUL:
        return int(t[:-1], 0) * _MUL[t[-1]]
    return int(t, 0)


class Geometry:
    def __init__(self, spec):
        self.spec = spec
        self.heads, self.dead, self.tries = 0, set(), 1
        self.zones, self.bad, self.weak = [], [], []
        size, zl = 0, []
        for word in spec.split():
            key, _, val = word.partition("=")
            if key == "size":
                size = _size(val)
            elif key == "heads":
                self.heads = int(val)
            elif key == "dead":
                self.dead = {int(x) for x in val.split(",")}
            elif key == "zones":
                zl = [tuple(_size(x) // SECTOR for x in z.split(":")) for z in val.split(",")]
            elif key == "bad":
                self.bad = [tuple(int(x, 0) for x in r.split("+")) for r in val.split(",")]
            elif key == "weak":
                for r in val.split(","):
                    rng, _, tries = r.partition(":")
                    s, c = (int(x, 0) for x in rng.split("+"))
                    self.weak.append((s, c))
                    self.tries = int(tries)
            else:
                raise ValueError(f"unknown key in spec: {word}")
        if not (size and 2 <= self.heads <= 8 and self.dead and zl and max(self.dead) < self.heads):
            raise ValueError("a spec needs size, heads (2-8), dead (heads below that) and zones")
        self.sectors = size // SECTOR
        at = 0
        for i, (length, band) in enumerate(zl):
            n = self.sectors - at if i + 1 == len(zl) or at + length > self.sectors else length
            self.zones.append((at, n, band))
            at += n

    def bad_ranges(self):
        """Unreadable [start, end) sector ranges, sorted and merged."""
        rs = []
        for start, count, band in self.zones:
            for o in range(0, count, band):
                if (o // band) % self.heads in self.dead:
                    rs.append([start + o, start + min(o + band, count)])
        rs += [[s, s + c] for s, c in self.bad]
        rs.sort()
        out = []
        for a, b in rs:
            if out and a <= out[-1][1]:
                out[-1][1] = max(out[-1][1], b)
            else:
                out.append([a, b])
        return [tuple(r) for r in out]

    def weak_ranges(self):
        """Weak [start, end) ranges outside the unreadable ones (what the C model makes weak)."""
        bad = self.bad_ranges()
        out = []
        for s, c in self.weak:
            for x in range(s, s + c):
                if not any(a <= x < b for a, b in bad):
                    out.append(x)
        res = []
        for x in out:
            if res and res[-1][1] == x:
                res[-1][1] = x + 1
            else:
                res.append([x, x + 1])
        return [tuple(r) for r in res]

    def bands(self, min_sectors):
        return [r for r in self.bad_ranges() if r[1] - r[0] >= min_sectors]


def load(path):
    """name -> spec from a geometries file (`name spec...` lines, # comments)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                name, _, spec = line.partition(" ")
                out[name] = spec.strip()
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "ranges":
        for a, b in Geometry(sys.argv[2]).bad_ranges():
            print(a, b)
    else:
        sys.exit("usage: deadhead_geometry.py ranges SPEC")
