#!/usr/bin/env python3
"""USB HID boot keyboards (two usb-kbd on qemu-xhci) feed the console beside the serial port: keys
sent to one keyboard with QMP input-send-event are seen as a typed command (shift included),
Ctrl-C from the other (behind a usb-hub) stops a running command, a held key repeats, and both show in `usb`."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import Machine, check, finish  # noqa: E402

QCODE = {" ": "spc", "-": "minus", "\r": "ret", ".": "dot"}


def key(m, dev, code, down):
    return m.qmp("input-send-event", device=dev, events=[ev(code, down)])


def ev(code, down):
    return {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": code}}}


def type_text(m, dev, text):
    """One QMP call a character (press and release together: the keyboard queues them and reports
    one per poll), so a slow host never holds a key long enough to repeat; paced, since QEMU's
    keyboard queue holds 16 events and drops what comes beyond."""
    for ch in text:
        code = QCODE.get(ch, ch.lower())
        evs = [ev(code, True), ev(code, False)]
        if ch.isupper():
            evs = [ev("shift", True)] + evs + [ev("shift", False)]
        m.qmp("input-send-event", device=dev, events=evs)
        time.sleep(0.1)


# input-send-event targets a display's console, which delivers to the keyboard bound to it: one
# display device per keyboard.
ctrl = ["-device", "VGA,id=v0", "-device", "secondary-vga,id=v1", "-device", "qemu-xhci,id=xhci",
        "-device", "usb-kbd,id=kbd1,bus=xhci.0,display=v0", "-device", "usb-hub,bus=xhci.0,port=2",
        "-device", "usb-kbd,id=kbd2,bus=xhci.0,port=2.3,display=v1"]   # the second behind a hub
with Machine(controllers=ctrl, name="usbhid") as m:
    m.wait_prompt(120)
    out = m.cmd("usb")
    check("both keyboards are bound, one behind the hub", len(re.findall(r"class 03/01/01, driver usb-kbd", out)) == 2
          and re.search(r"6\.3\s+full\s+0627:0001.*driver usb-kbd", out), out)
    type_text(m, "v0", "echo Typed on USB-1.\r")
    m.wait_for(r"\nTyped on USB-1\.\n", 60)
    check("a command typed on a USB keyboard runs (shift, digits, punctuation)", True)
    m.wait_prompt(30)
    m.send("sleep 60000")
    m.wait_for(r"sleep 60000\n", 10)
    time.sleep(0.5)
    m.qmp("input-send-event", device="v1", events=[ev("ctrl", True), ev("c", True), ev("c", False), ev("ctrl", False)])
    m.wait_prompt(30)
    check("Ctrl-C on the second keyboard stops a running command", "interrupted" in m.last_before, m.last_before)
    key(m, "v0", "x", True)
    time.sleep(1.5)
    key(m, "v0", "x", False)
    type_text(m, "v0", "\r")
    m.wait_prompt(30)
    xs = re.search(r"(x+)", m.last_before)
    check("a held key repeats", xs and len(xs.group(1)) >= 5, m.last_before)
    code = m.poweroff_and_wait()
    check("poweroff", code == 0, code)
finish()
