#!/usr/bin/env python3
"""The PS/2 keyboard (q35's i8042) drives the appliance: keys pressed through QMP send-key run a
whole rescue (cow format, cow open, rescue, wait, map) and edit lines (Home/End, arrows, Caps
Lock, Backspace, Ctrl-C, history, PgUp inserting nothing); `set keymap=` de, fr and uk type
what those layouts print on their keys. The serial port is only read, to check."""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (Machine, blkdebug_read_error, check, finish, make_pattern_disk,  # noqa: E402
                          map_text, parse_mapfile, sha256_file)

BAD = 5000   # the source's unreadable sector

SYM_US = {" ": "spc", "\r": "ret", "-": "minus", "=": "equal", ".": "dot", ",": "comma", "/": "slash",
          ";": "semicolon", "'": "apostrophe", "[": "bracket_left", "]": "bracket_right",
          "\\": "backslash", "`": "grave_accent"}
SHIFT_US = {"_": "minus", "+": "equal", ">": "dot", "<": "comma", "?": "slash", ":": "semicolon",
            '"': "apostrophe", "{": "bracket_left", "}": "bracket_right", "|": "backslash",
            "~": "grave_accent", "!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6",
            "&": "7", "*": "8", "(": "9", ")": "0"}


def layout(name):
    """char -> chord of qcodes, for the keys as each layout labels them."""
    keys = {c: [c] for c in "abcdefghijklmnopqrstuvwxyz0123456789"}
    keys.update({c.upper(): ["shift", c] for c in "abcdefghijklmnopqrstuvwxyz"})
    keys.update({c: [q] for c, q in SYM_US.items()})
    keys.update({c: ["shift", q] for c, q in SHIFT_US.items()})
    if name == "uk":
        keys.update({'"': ["shift", "2"], "@": ["shift", "apostrophe"], "#": ["backslash"],
                     "~": ["shift", "backslash"], "\\": ["less"], "|": ["shift", "less"]})
    elif name == "de":
        keys.update({"y": ["z"], "z": ["y"], "Y": ["shift", "z"], "Z": ["shift", "y"],
                     "=": ["shift", "0"], "-": ["slash"], "_": ["shift", "slash"], "/": ["shift", "7"],
                     ":": ["shift", "dot"], ";": ["shift", "comma"], "@": ["alt_r", "q"],
                     "+": ["bracket_right"], "*": ["shift", "bracket_right"], "#": ["backslash"],
                     "<": ["less"], ">": ["shift", "less"], "|": ["alt_r", "less"], "?": ["shift", "minus"],
                     '"': ["shift", "2"], "&": ["shift", "6"], "(": ["shift", "8"], ")": ["shift", "9"],
                     "[": ["alt_r", "8"], "]": ["alt_r", "9"], "{": ["alt_r", "7"], "}": ["alt_r", "0"],
                     "\\": ["alt_r", "minus"], "~": ["alt_r", "bracket_right"]})
    elif name == "fr":
        keys.update({"a": ["q"], "q": ["a"], "z": ["w"], "w": ["z"], "m": ["semicolon"],
                     "A": ["shift", "q"], "Q": ["shift", "a"], "Z": ["shift", "w"], "W": ["shift", "z"],
                     "M": ["shift", "semicolon"]})
        keys.update({d: ["shift", d] for d in "0123456789"})
        keys.update({"&": ["1"], '"': ["3"], "'": ["4"], "(": ["5"], "-": ["6"], "_": ["8"], ")": ["minus"],
                     ",": ["m"], "?": ["shift", "m"], ";": ["comma"], ".": ["shift", "comma"], ":": ["dot"],
                     "/": ["shift", "dot"], "!": ["slash"], "$": ["bracket_right"], "*": ["backslash"],
                     "%": ["shift", "apostrophe"], "<": ["less"], ">": ["shift", "less"],
                     "^": ["bracket_left"], "~": ["alt_r", "2"], "#": ["alt_r", "3"], "{": ["alt_r", "4"],
                     "[": ["alt_r", "5"], "|": ["alt_r", "6"], "\\": ["alt_r", "8"], "@": ["alt_r", "0"],
                     "]": ["alt_r", "minus"], "}": ["alt_r", "equal"], "=": ["equal"], "+": ["shift", "equal"]})
    return keys


def chords(text, name="us"):
    keys = layout(name)
    return [keys[c] for c in text]


def typed_cmd(m, line, name="us", timeout=60, extra=()):
    """Types a command line on the keyboard and waits for its echo and the prompt after it."""
    m.send_keys(chords(line, name) + list(extra) + [["ret"]])
    m.wait_for(re.escape(line) + r"\n", timeout)
    m.wait_prompt(timeout)
    return m.last_before


tmp = tempfile.mkdtemp(prefix="cowboot-kbd-")
src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")
make_pattern_disk(src, 8 << 20, "source")
with open(cow, "wb") as f:
    f.truncate(16 << 20)
src_hash = sha256_file(src)
disks = [dict(path=src, serial="KSRC-1", readonly=True, blkdebug_rules=blkdebug_read_error(BAD)),
         dict(path=cow, serial="KCOW-1")]

with Machine(disks=disks, name="kbd") as m:
    m.wait_prompt(90)
    boot = m.last_before
    check("the i8042 self-test passes and the PS/2 keyboard is found",
          re.search(r"keyboard: PS/2 \(i8042 self-test passed, scan code set 2", boot + m.buf) or
          "keyboard: PS/2" in m.cmd("log 50"), boot[-400:])

    # A whole rescue from the keyboard.
    out = typed_cmd(m, "cow format vd2 vd1 --yes")
    check("keys: cow format", "error" not in out, out)
    out = typed_cmd(m, "cow open vd1 vd2")
    check("keys: cow open", "ov0: vd2 over vd1" in out, out)
    out = typed_cmd(m, "rescue ov0")
    check("keys: rescue starts", "ov0: rescue started" in out, out)
    typed_cmd(m, "wait", timeout=300)
    out = typed_cmd(m, "status")
    check("keys: wait returns when the rescue has finished", "ov0 rescue: finished" in out, out)
    blocks = parse_mapfile(map_text(typed_cmd(m, "map ov0")))
    bad = [(p, s) for p, s, st in blocks if st == "-"]
    check("keys: map shows the one bad sector, the rest rescued",
          bad == [(BAD * 512, 512)] and sum(s for p, s, st in blocks if st == "+") == (8 << 20) - 512, blocks)

    # Line editing from the keyboard.
    m.send_keys(chords("cho bc") + [["home"]] + chords("e") + [["end"]] + chords("d") +
                [["left"], ["left"], ["backspace"]] + chords("X") + [["ret"]])
    m.wait_for(r"\n")
    m.wait_prompt()
    check("keys: Home, End, Left, Backspace edit the line", m.last_before.strip() == "Xcd", m.last_before)
    m.send_keys(chords("echo ") + [["caps_lock"]] + chords("ab") + [["shift", "c"], ["caps_lock"]] +
                chords("d") + [["shift", "e"], ["ret"]])
    m.wait_for(r"echo ABcdE\n")
    m.wait_prompt()
    check("keys: Caps Lock turns letters over (Shift turns them back)", m.last_before.strip() == "ABcdE",
          m.last_before)
    m.send_keys(chords("echo nope") + [["ctrl", "c"]])
    m.wait_for(r"\^C\n")
    m.wait_prompt()
    check("keys: Ctrl-C abandons the line", True)
    m.send_keys([["up"], ["ret"]])
    m.wait_for(r"echo ABcdE")
    m.wait_prompt()
    check("keys: Up recalls the previous command", "ABcdE" in m.last_before, m.last_before)
    m.send_keys(chords("echo a") + [["pgup"], ["pgdn"], ["shift", "pgup"], ["shift", "pgdn"]] + chords("b") +
                [["ret"]])
    m.wait_for(r"echo ab\n")
    m.wait_prompt()
    check("keys: PgUp/PgDn (also with Shift) insert nothing", m.last_before.strip() == "ab", m.last_before)

    # Layouts: each `set keymap=` typed in the layout before it.
    probe = {"de": "echo zy-_/=:;@+*#<>|?()[]{}\\~", "fr": "echo azqwm,;:!/&'(-_)=+$*%<>^~#{[|\\@]}",
             "uk": "echo \"@#~\\|\""}
    expect = {"de": probe["de"][5:], "fr": probe["fr"][5:], "uk": "@#~\\|"}   # the shell takes the quotes
    prev = "us"
    for name in ("de", "fr", "uk"):
        out = typed_cmd(m, f"set keymap={name}", prev)
        check(f"keys: set keymap={name} typed in {prev}", re.search(rf"keymap\s+= {name}", out), out)
        out = typed_cmd(m, probe[name], name)
        check(f"keys: the {name} layout types its own characters", out.strip() == expect[name], out)
        prev = name
    out = typed_cmd(m, "set keymap=us", "uk")
    check("keys: back to us", re.search(r"keymap\s+= us", out), out)
    m.send_keys([["z"]] + chords(" ") + [["y"]])
    m.send_keys([["ctrl", "c"]])
    m.wait_for(r"\^C\n")
    check("keys: us is QWERTY again (z then y)", m.last_before.endswith("z y"), m.last_before[-40:])
    m.wait_prompt()
    m.poweroff_and_wait(60)
check("the source image is unchanged", sha256_file(src) == src_hash)
finish()
