#!/bin/bash
# evidence_tamper_test.sh -- a few hundred random mutations of a real log (flip a byte, truncate,
# delete, swap tiles, reorder entries, rename checkpoints): `sinkd verify` must reject every one
# and name a file. Mutations are undone by restoring the single file touched.
source "$SINKD_SOURCE_DIR/tests/e2e/evidence_lib.sh"
st="$work/state"
"$tool" gen "$st" sinkd.example/tamper 67000 40 1009 6000 >/dev/null
"${sinkd[@]}" verify "$st/log" --key "$st/keys/log.vkey" >/dev/null
python3 - "$st/log" "$st/keys/log.vkey" "${N:-300}" "${sinkd[@]}" <<'PY'
import os, random, shutil, subprocess, sys
log, vkey, n, cmd = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
rng = random.Random(int(os.environ.get("SEED", "6962")))
files = sorted(os.path.relpath(os.path.join(d, f), log) for d, _, fs in os.walk(log) for f in fs)
latest = open(os.path.join(log, "checkpoint")).read().split("\n")[1]
# Files whose absence is an error (old partial tiles and old checkpoint copies may be removed by
# design: C2SP lets a log delete partial tiles, and an old checkpoint commits to nothing the
# latest does not).
required = [f for f in files if ".p/" not in f and not (f.startswith("checkpoints/") and f != "checkpoints/" + latest)]
full_tiles = [f for f in files if f.startswith("tile/0/") and ".p/" not in f]
bundles = [f for f in files if f.startswith("tile/entries/") and ".p/" not in f]
caught = 0
kinds = {}
for i in range(n):
    kind = rng.choice(["flip", "flip", "flip", "truncate", "delete", "swap_tiles", "reorder_entries", "rename_checkpoint", "append"])
    backup = os.path.join(os.path.dirname(log), "backup")
    touched = []
    def save(f):
        p = os.path.join(log, f)
        b = backup + str(len(touched))
        shutil.copy2(p, b)
        touched.append((p, b))
    if kind == "flip":
        f = rng.choice(files); save(f); p = os.path.join(log, f)
        data = bytearray(open(p, "rb").read()); k = rng.randrange(len(data)); data[k] ^= 1 << rng.randrange(8)
        open(p, "wb").write(data); what = "%s byte %d" % (f, k)
    elif kind == "append":
        f = rng.choice(files); save(f); open(os.path.join(log, f), "ab").write(b"\x00"); what = f
    elif kind == "truncate":
        f = rng.choice(files); save(f); p = os.path.join(log, f)
        size = os.path.getsize(p); os.truncate(p, rng.randrange(size)); what = f
    elif kind == "delete":
        f = rng.choice(required); save(f); os.unlink(os.path.join(log, f)); what = f
    elif kind == "swap_tiles":
        a, b = rng.sample(full_tiles, 2); save(a); save(b)
        pa, pb = os.path.join(log, a), os.path.join(log, b)
        da, db = open(pa, "rb").read(), open(pb, "rb").read(); open(pa, "wb").write(db); open(pb, "wb").write(da)
        what = a + " <-> " + b
    elif kind == "reorder_entries":
        f = rng.choice(bundles); save(f); p = os.path.join(log, f); data = open(p, "rb").read()
        ents, off = [], 0
        while off < len(data):
            l = data[off] << 8 | data[off + 1]; ents.append(data[off:off + 2 + l]); off += 2 + l
        j = rng.randrange(len(ents) - 1)
        if ents[j] == ents[j + 1]:
            j = 0
        if rng.random() < 0.5:
            ents[j], ents[j + 1] = ents[j + 1], ents[j]
        else:
            del ents[j]
        open(p, "wb").write(b"".join(ents)); what = "%s entry %d" % (f, j)
    else:
        cps = [f for f in files if f.startswith("checkpoints/")]
        a, b = rng.sample(cps, 2); save(a); save(b)
        pa, pb = os.path.join(log, a), os.path.join(log, b)
        da, db = open(pa, "rb").read(), open(pb, "rb").read(); open(pa, "wb").write(db); open(pb, "wb").write(da)
        what = a + " <-> " + b
    r = subprocess.run(cmd + ["verify", log, "--key", vkey], capture_output=True, text=True)
    if r.returncode == 1 and ("tile/" in r.stderr or "checkpoint" in r.stderr):
        caught += 1
        kinds[kind] = kinds.get(kind, 0) + 1
    else:
        print("NOT CAUGHT (%s: %s): rc=%d %s" % (kind, what, r.returncode, r.stdout + r.stderr))
        sys.exit(1)
    for p, b in reversed(touched):
        shutil.copy2(b, p)
        os.unlink(b)
r = subprocess.run(cmd + ["verify", log, "--key", vkey], capture_output=True, text=True)
assert r.returncode == 0, "restored log does not verify: " + r.stderr
print("evidence_tamper: %d/%d mutations caught %s" % (caught, n, sorted(kinds.items())))
PY
