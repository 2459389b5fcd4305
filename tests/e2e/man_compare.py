#!/usr/bin/env python3
"""man_compare.py SINKD MANDIR -- every command `SINKD --help` lists has its page in MANDIR
(sinkd.1 and sinkd-<command>.1, plain or .gz), no page is left for a command that is gone, and
each page, rendered by man(1), says exactly what `--help` says: the DESCRIPTION's lines, their
man indentation taken off, equal the --help lines. Exit 1 naming the first difference."""
import os
import re
import subprocess
import sys

binary, mandir = sys.argv[1], sys.argv[2]
env = {**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "250", "MAN_KEEP_FORMATTING": ""}


def run(args):
    return subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout


def page_file(name):
    for f in (name + ".1", name + ".1.gz"):
        if os.path.exists(os.path.join(mandir, f)):
            return os.path.join(mandir, f)
    sys.exit(f"man_compare: no page {name}(1) in {mandir}")


def rendered_description(path):
    text = run(["man", "-l", path])
    text = re.sub(r".\x08", "", text)  # overstrike bold/underline, if any
    lines = text.split("\n")
    start = lines.index("DESCRIPTION") + 1
    end = next(i for i in range(start, len(lines)) if lines[i] == "SEE ALSO")
    body = [l.rstrip() for l in lines[start:end]]
    while body and body[-1] == "":
        body.pop()
    indent = min(len(l) - len(l.lstrip()) for l in body if l)
    return [l[indent:] for l in body]


top = run([binary, "--help"])
commands = [m.group(1) for m in re.finditer(r"^  ([a-z][a-z0-9-]*)\s{2,}\S", top, re.M)]
if len(commands) < 5:
    sys.exit(f"man_compare: only {commands} in {binary} --help")
pages = {"sinkd": []} | {f"sinkd-{c}": [c] for c in commands}
for name, args in pages.items():
    want = [l.rstrip() for l in run([binary, *args, "--help"]).rstrip("\n").split("\n")]
    got = rendered_description(page_file(name))
    if got != want:
        for i, (g, w) in enumerate(zip(got + [""] * len(want), want + [""] * len(got))):
            if g != w:
                sys.exit(f"man_compare: {name}(1) line {i + 1}: page says {g!r}, --help says {w!r}")
stale = sorted(f for f in os.listdir(mandir)
               if re.sub(r"\.1(\.gz)?$", "", f) not in pages and re.search(r"\.1(\.gz)?$", f))
if stale:
    sys.exit(f"man_compare: pages for no command: {stale}")
print(f"man pages: {len(pages)} pages equal their --help")
