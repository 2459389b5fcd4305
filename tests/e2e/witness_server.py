#!/usr/bin/env python3
"""witness_server.py -- a C2SP tlog-witness on loopback for the e2e tests, written from the spec
(c2sp.org/tlog-witness, tlog-cosignature, RFC 9162 consistency proofs) with Python's hashlib and
the `cryptography` package only: it shares no code with sinkd, so sinkd's requests and its checks
of the replies are tested against an independent implementation.

POST /add-checkpoint: body "old N\\n", base64 consistency-proof lines, "\\n", the checkpoint note.
Answers 404 (unknown origin), 403 (no valid log signature), 400 (bad body, old > size),
409 + text/x.tlog.size (old is not its last cosigned size), 422 (the proof fails), 200 with the
cosignature line. POST /bad-sig/add-checkpoint answers with a damaged cosignature.
Usage: witness_server.py PORTFILE LOG_VKEY_FILE WITNESS_NAME VKEY_OUT ; 127.0.0.1 only; exits
after 300 s."""
import base64
import hashlib
import http.server
import os
import struct
import sys
import threading
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PORTFILE, LOG_VKEY, NAME, VKEY_OUT = sys.argv[1:5]


def key_id(name, typ, pub):
    return hashlib.sha256(name.encode() + b"\n" + bytes([typ]) + pub).digest()[:4]


log_name, log_id_hex, log_b64 = open(LOG_VKEY).read().strip().split("+", 2)
log_raw = base64.b64decode(log_b64)
assert log_raw[0] == 1 and key_id(log_name, 1, log_raw[1:]).hex() == log_id_hex
log_pub = Ed25519PublicKey.from_public_bytes(log_raw[1:])

priv = Ed25519PrivateKey.generate()
pub = priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
wid = key_id(NAME, 4, pub)
with open(VKEY_OUT, "w") as f:
    f.write("%s+%s+%s\n" % (NAME, wid.hex(), base64.b64encode(bytes([4]) + pub).decode()))

state = {}  # origin -> (size, root)
lock = threading.Lock()


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def consistent(old, new, old_root, new_root, proof):
    """RFC 9162 section 2.1.4.2, step by step."""
    if old == new:
        return old_root == new_root and not proof
    if old == 0 or old > new or not proof and old & (old - 1) != 0:
        return False
    if old & (old - 1) == 0:
        proof = [old_root] + proof
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="text/plain; charset=utf-8"):
        body = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if not self.path.endswith("/add-checkpoint"):
            return self.send(404, "no such endpoint\n")
        body = self.rfile.read(min(int(self.headers.get("Content-Length", "0")), 65536))
        try:
            head, rest = body.split(b"\n", 1)
            if not head.startswith(b"old "):
                raise ValueError("no old line")
            old = int(head[4:])
            proof = []
            while not rest.startswith(b"\n"):
                line, rest = rest.split(b"\n", 1)
                proof.append(base64.b64decode(line, validate=True))
            note = rest[1:]
            split = note.rindex(b"\n\n")
            text, sigs = note[: split + 1], note[split + 2:].decode().splitlines()
            lines = text.decode().split("\n")
            origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
        except (ValueError, IndexError) as e:
            return self.send(400, "bad request: %s\n" % e)
        if origin != log_name:
            return self.send(404, "unknown origin\n")
        signed = False
        for line in sigs:
            who, b64 = line[2:].split(" ", 1) if line.startswith("\u2014 ") else ("", "")
            raw = base64.b64decode(b64) if who == log_name else b""
            if len(raw) == 68 and raw[:4].hex() == log_id_hex:
                try:
                    log_pub.verify(raw[4:], text)
                    signed = True
                except Exception:
                    return self.send(403, "log signature does not verify\n")
        if not signed:
            return self.send(403, "no signature by a known log key\n")
        with lock:
            last_size, last_root = state.get(origin, (0, None))
            if old > size:
                return self.send(400, "old > size\n")
            if old != last_size:
                return self.send(409, "%d\n" % last_size, "text/x.tlog.size")
            if old == 0 and proof:
                return self.send(400, "proof with old 0\n")
            if old > 0 and not consistent(old, size, last_root, root, proof):
                return self.send(422, "consistency proof does not verify\n")
            state[origin] = (size, root)
        ts = int(time.time())
        sig = priv.sign(b"cosignature/v1\ntime %d\n" % ts + text)
        if self.path.startswith("/bad-sig/"):
            sig = sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
        line = "\u2014 %s %s\n" % (NAME, base64.b64encode(wid + struct.pack(">Q", ts) + sig).decode())
        self.send(200, line)


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
threading.Timer(300, server.shutdown).start()
server.serve_forever()
