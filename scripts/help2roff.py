#!/usr/bin/env python3
"""help2roff.py -- the man pages sinkd(1) and sinkd-<command>(1) from the binary's own --help.

Usage: help2roff.py SINKD OUTDIR VERSION

Each page's NAME line comes from the command table of `sinkd --help` and its body is the
command's --help text itself, verbatim in a no-fill block, so a page cannot say other than
--help does (tests/e2e/man_pages_test.sh renders each page and compares). Run by the build after
sinkd is linked; OUTDIR is emptied first, so a removed command leaves no page behind.
"""
import os
import re
import subprocess
import sys


def help_text(binary, args):
    out = subprocess.run([binary, *args, "--help"], capture_output=True, text=True, check=True,
                         env={**os.environ, "LC_ALL": "C"})
    return out.stdout


def roff_escape(line):
    line = line.replace("\\", "\\e").replace("-", "\\-")
    # a line starting with . or ' would be a roff request
    return "\\&" + line if line.startswith((".", "'")) else line


def page(name, section_title, summary, text, version, see_also):
    out = [
        f'.TH {name.upper()} 1 "" "sinkd {version}" "{section_title}"',
        ".SH NAME",
        f"{roff_escape(name)} \\- {roff_escape(summary)}",
        ".SH DESCRIPTION",
        ".nf",
    ]
    out += [roff_escape(line) if line else "" for line in text.rstrip("\n").split("\n")]
    out += [".fi", ".SH SEE ALSO", ",\n".join(f".BR {p} (1)" for p in see_also)]
    return "\n".join(out) + "\n"


def main():
    binary, outdir, version = sys.argv[1:4]
    top = help_text(binary, [])
    commands = []
    for line in top.split("\n"):
        m = re.match(r"^  ([a-z][a-z0-9-]*)\s{2,}(\S.*)$", line)
        if m:
            commands.append((m.group(1), m.group(2)))
    if len(commands) < 5:
        sys.exit(f"help2roff: only {len(commands)} commands in '{binary} --help'")
    os.makedirs(outdir, exist_ok=True)
    for f in os.listdir(outdir):
        if f.endswith(".1"):
            os.remove(os.path.join(outdir, f))
    pages = [f"sinkd-{c}" for c, _ in commands]
    with open(os.path.join(outdir, "sinkd.1"), "w") as f:
        f.write(page("sinkd", "sinkd", "botnet sinkhole and lawful-remediation server", top,
                     version, pages))
    for c, summary in commands:
        with open(os.path.join(outdir, f"sinkd-{c}.1"), "w") as f:
            f.write(page(f"sinkd-{c}", "sinkd", summary, help_text(binary, [c]), version,
                         ["sinkd"]))


main()
