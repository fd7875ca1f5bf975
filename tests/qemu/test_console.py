#!/usr/bin/env python3
"""The serial console as a user drives it: banner, commands, bad input, line editing, boot
scripts from cowboot.cfg and from load options, poweroff and reboot."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import Machine, check, finish  # noqa: E402

CFG = """# cowboot.cfg used by the test
echo cfg-line-one
set loglevel=debug

bogus-command here
echo never-reached
"""

# Boot 1: a cowboot.cfg with a failing third command, then interactive checks.
with Machine(cfg=CFG, name="console") as m:
    m.wait_for(r"cowboot \S+\n", 60)
    m.wait_for(r"firmware: (.*)\n")
    banner = m.last_before
    m.wait_for(r"cpu: .*\n")
    m.wait_for(r"memory: (\d+) MiB usable")
    check("banner shows version, firmware, cpu and memory", True)
    m.wait_for(r"script: echo cfg-line-one\ncfg-line-one\n")
    check("cowboot.cfg runs before the prompt", True)
    mm = m.wait_for(r"script failed at line (\d+): ([^\n]*)\n")
    check("a failing script line is reported with its number and reason",
          mm.group(1) == "5" and "bogus-command" in mm.group(2), mm.group(0))
    m.wait_prompt()
    out = m.cmd("set")
    check("script set a setting before failing", re.search(r"loglevel\s+= debug", out), out)
    check("script stopped at the failing line", "never-reached" not in m.last_before + out)

    out = m.cmd("help")
    for name in ("help", "version", "pci", "mem", "log", "set", "reboot", "poweroff"):
        check(f"help lists {name}", re.search(rf"^\s+{name}\s", out, re.M), out)
    out = m.cmd("help set")
    check("help <cmd> prints usage", "usage: set" in out, out)
    out = m.cmd("help nosuch")
    check("help of an unknown command says so", "no command 'nosuch'" in out, out)
    out = m.cmd("version")
    check("version shows the firmware vendor", "firmware: EDK II" in out, out)
    out = m.cmd("frobnicate now")
    check("unknown command is named", "unknown command 'frobnicate'" in out, out)
    out = m.cmd("log abc")
    check("bad arguments print the usage line", "usage: log [n]" in out, out)
    out = m.cmd("log 5")
    check("log shows the script failure event", "script failed at line 5" in out, out)
    out = m.cmd("set progress=lines")
    check("set accepts a valid value", re.search(r"progress\s+= lines", out), out)
    out = m.cmd("set nosuch=1")
    check("set refuses an unknown key", "unknown setting 'nosuch'" in out, out)
    out = m.cmd("set progress=lines loglevel=loud")
    check("set refuses a bad value", "loglevel=loud: one of err, warn, info, debug" in out, out)
    out = m.cmd("set")
    check("a refused set changes nothing", re.search(r"loglevel\s+= debug", out), out)
    out = m.cmd('echo "two words"  three')
    check("quotes group words", "two words three" in out, out)
    out = m.cmd('echo "unterminated')
    check("an unterminated quote is an error", "unterminated quote" in out, out)

    # Line editing: backspace, Ctrl-U, Ctrl-C, history.
    m.send_raw("echo abcX\x7f\x7fd\r")
    m.wait_for(r"abd\n")
    check("backspace edits the line", True)
    m.wait_prompt()
    m.send_raw("echo wrong\x15echo right\r")
    m.wait_for(r"right\n")
    check("Ctrl-U erases the line", "wrong\n" not in m.last_before.split("right")[0][-6:])
    m.wait_prompt()
    m.send_raw("echo cancelled\x03")
    m.wait_for(r"\^C\n")
    m.wait_prompt(10)
    check("Ctrl-C abandons the line without running it", "cancelled\ncancelled" not in m.buf)
    m.send_raw("echo history-item\r")
    m.wait_for("history-item\n")
    m.wait_prompt()
    m.send_raw("\x1b[A\r")
    m.wait_for("history-item\n")
    check("up arrow recalls and re-runs the previous command", True)
    m.wait_prompt()
    m.send_raw("echo aXc\x1b[D\x7fb\r")
    mm = m.wait_for(r"\n(\w+)\n")
    m.wait_prompt()
    check("left arrow and mid-line edits work", mm.group(1) == "abc", mm.group(0))
    out = m.cmd("echo done")
    check("the prompt works after editing", "done" in out, out)
    code = m.poweroff_and_wait()
    check("poweroff exits QEMU with status 0", code == 0, code)

# Boot 2: load options (through the UEFI shell, which passes a command line) ending in poweroff.
with Machine(load_options="echo from-load-options; version; poweroff", name="loadopts") as m:
    m.wait_for(r"running boot script from load options\n", 90)
    m.wait_for(r"from-load-options\n")
    check("load options run as a ;-separated script", True)
    code = m.wait_exit(60)
    check("a script ending in poweroff leaves the machine off (exit 0)", code == 0, code)

# Boot 3: on-error=poweroff makes a failing script power the machine off; reboot comes back.
with Machine(cfg="set on-error=poweroff\nnot-a-command\n", name="onerror") as m:
    m.wait_for(r"script failed at line 2", 60)
    code = m.wait_exit(30)
    check("on-error=poweroff powers off after a failed script", code == 0, code)

with Machine(name="reboot", extra_args=[]) as m:
    m.wait_prompt(60)
    m.send("reboot")
    code = m.wait_exit(30)
    # -no-reboot turns the firmware's reset into a QEMU exit: proof the reset was requested.
    check("reboot resets the machine", code == 0 and "rebooting" in m.buf, (code, m.buf[-200:]))

finish()
