#!/usr/bin/env python3
"""verify_bundle.py -- independent check of a sinkd evidence bundle with hashlib and the
`cryptography` package only (Debian python3-cryptography). Shares no code with sinkd.

Checks: the C2SP signed-note checkpoint signature (Ed25519, key ID rule of c2sp.org/signed-note)
with the log key the caller trusts (the log's published log.vkey, never the bundle's own copy:
whoever made a bundle could have signed it with a key of their own), each entry file's RFC 6962
leaf hash, and each inclusion proof (RFC 9162 section 2.1.3.2). The bundle's own log.vkey must
be that same key. A sealed entry (tags 80-82: personal fields under AES-256-GCM) that the bundle
gives a seal_key and seal_nonce for is opened with them (the additional data is every byte of the
entry before tag 82), and its personal fields are listed.
Usage: verify_bundle.py BUNDLE_DIR TRUSTED_VKEY_FILE   (exit 0 ok, 1 failure, 2 usage)"""
import base64
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def fail(msg):
    print("verify_bundle.py: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def b64(s):
    raw = base64.b64decode(s, validate=True)
    if base64.b64encode(raw).decode() != s:
        raise ValueError("non-canonical base64")
    return raw


def parse_vkey(text):
    name, keyid, key = text.strip().split("+", 2)
    raw = b64(key)
    if len(raw) != 33 or raw[0] != 1:
        raise ValueError("not an Ed25519 verifier key")
    want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if want.hex() != keyid:
        raise ValueError("key ID does not match the key")
    return name, bytes.fromhex(keyid), raw[1:]


def open_checkpoint(note, name, keyid, pub):
    split = note.rfind(b"\n\n")
    if split < 0:
        raise ValueError("no blank line before signatures")
    text, sigs = note[: split + 1], note[split + 2:]
    verified = False
    for line in sigs.split(b"\n")[:-1]:
        if not line.startswith("\u2014 ".encode()):
            raise ValueError("signature line does not start with an em dash")
        who, sig = line[4:].decode().split(" ")
        raw = b64(sig)
        if who == name and raw[:4] == keyid:
            try:
                Ed25519PublicKey.from_public_bytes(pub).verify(raw[4:], text)
            except InvalidSignature:
                raise ValueError("signature by %s does not verify" % name)
            verified = True
    if not verified or not sigs.endswith(b"\n"):
        raise ValueError("no valid signature by %s" % name)
    lines = text.decode().split("\n")
    origin, size, root = lines[0], lines[1], lines[2]
    if origin != name or not size.isdigit() or (len(size) > 1 and size[0] == "0"):
        raise ValueError("bad checkpoint header")
    return origin, int(size), b64(root)


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def tlvs(data, start):
    """(tag, offset of the tag byte, value) of each field from `start`: tag(1) len(2, BE) value."""
    out, pos = [], start
    while pos < len(data):
        if len(data) - pos < 3:
            raise ValueError("truncated field header at byte %d" % pos)
        n = int.from_bytes(data[pos + 1:pos + 3], "big")
        if n == 0 or pos + 3 + n > len(data):
            raise ValueError("bad field length at byte %d" % pos)
        out.append((data[pos], pos, data[pos + 3:pos + 3 + n]))
        pos += 3 + n
    return out


# Personal fields by record kind (sinkd's seal.c): src, host, user, local_ip, bot_key, scope.
PERSONAL = {1: {3: "src", 10: "host", 11: "user", 13: "local_ip", 16: "bot_key"},
            9: {3: "src", 16: "bot_key"}, 2: {3: "src", 32: "bot_key"}, 3: {3: "src", 32: "bot_key"},
            4: {3: "src", 32: "bot_key"}, 10: {47: "scope"}}


def open_sealed(data, key, nonce):
    """Opens tag 82 of a sealed record; returns its personal fields as {name: value}."""
    if len(data) < 2 or data[0] != 1:
        raise ValueError("not a sinkd record")
    fields = tlvs(data, 2)
    if not fields or fields[-1][0] != 82 or not any(t == 80 for t, _, _ in fields):
        raise ValueError("not a sealed record")
    tag, off, ct = fields[-1]
    plain = AESGCM(key).decrypt(nonce, ct, data[:off])
    kind, names, last = data[1], {}, 0
    for t, _, v in tlvs(plain, 0):
        if t not in PERSONAL.get(kind, {}) or t <= last:
            raise ValueError("sealed field %d is not a personal field of kind %d in order" % (t, kind))
        last = t
        if t == 3:
            ip = v[1:-2]
            v = ("%s port %d" % (".".join(str(b) for b in ip) if v[0] == 4 else ip.hex(),
                                 int.from_bytes(v[-2:], "big")))
        names[PERSONAL[kind][t]] = v if isinstance(v, str) else v.decode("utf-8", "replace")
    return names


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    d = sys.argv[1]
    try:
        with open(sys.argv[2]) as f:
            trusted = f.read()
        name, keyid, pub = parse_vkey(trusted)
        with open(os.path.join(d, "log.vkey")) as f:
            own = f.read()
        if own.strip() != trusted.strip():
            raise ValueError("the bundle's log.vkey is not the trusted key %s" % sys.argv[2])
        with open(os.path.join(d, "checkpoint"), "rb") as f:
            origin, size, root = open_checkpoint(f.read(), name, keyid, pub)
        with open(os.path.join(d, "bundle.json")) as f:
            m = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        fail(str(e))
    if m.get("format") != "sinkd-evidence-bundle/1":
        fail("bundle.json: unknown format")
    if m["origin"] != origin or m["tree_size"] != size or m["root"] != base64.b64encode(root).decode():
        fail("bundle.json: tree head differs from the signed checkpoint")
    opened = 0
    for e in m["entries"]:
        idx = e["index"]
        if e["file"] != "entries/%d.bin" % idx:
            fail("entry %d names %r" % (idx, e["file"]))
        try:
            with open(os.path.join(d, e["file"]), "rb") as f:
                data = f.read()
            proof = [bytes.fromhex(p) for p in e["inclusion_proof"]]
        except (OSError, ValueError) as err:
            fail(str(err))
        leaf = hashlib.sha256(b"\x00" + data).digest()
        if leaf.hex() != e["leaf_hash"]:
            fail("%s: does not hash to the leaf hash of entry %d" % (e["file"], idx))
        if any(len(p) != 32 for p in proof) or not verify_inclusion(idx, size, leaf, proof, root):
            fail("entry %d: inclusion proof does not reach the signed root" % idx)
        if "seal_key" in e:
            try:
                fields = open_sealed(data, bytes.fromhex(e["seal_key"]), bytes.fromhex(e["seal_nonce"]))
            except (ValueError, KeyError, InvalidTag) as err:
                fail("entry %d: its seal_key does not open it (%s)" % (idx, err or "authentication failed"))
            opened += 1
            print("  entry %d opened: %s" % (idx, ", ".join("%s=%s" % kv for kv in sorted(fields.items()))))
    print("verify_bundle.py: OK: %d entries in the signed tree of size %d, %d sealed entries opened"
          % (len(m["entries"]), size, opened))


if __name__ == "__main__":
    main()
