#!/usr/bin/env python3
"""plugx_bot.py -- an independent PlugX bot for end-to-end tests, written from the public
descriptions only (shared notes: PLUGX.md; Emerging Threats Open sids 2017714/2018169 for the HTTP
header form; the classic keystream "family A" of public traffic decoders), not from sinkd's code.

Each mode opens one connection from a chosen loopback source to the sinkhole, speaks one form of
the protocol and prints one JSON line of what came back, so a test can check the sinkhole's side
against what this bot saw:

  header  HTTP header-form check-ins (POST /<24 hex> or /update?id=<8 hex>, four custom headers)
  body    raw TCP packets (a poll, then heartbeats)
  unknown a packet of a variant no table knows (constants sinkd does not have)
  garbage bytes that are no protocol at all
  get     a browser's GET /

Usage: plugx_bot.py MODE HOST PORT [--source IP] [--names x|hhv|digit] [--url hex24|update]
       [--count N] [--keep-alive]
"""
import argparse
import json
import os
import random
import socket
import struct
import sys

MASK = 0xFFFFFFFF


def keystream_a(key, n):
    """Family A: k0=k1=k2=k3=key; per byte the four registers move and their sum's low byte is
    the keystream byte (PLUGX.md; public decoders of 2013-2015)."""
    k0 = k1 = k2 = k3 = key
    out = bytearray()
    for _ in range(n):
        k0 = (k0 + (k0 >> 3) - 0x11111111) & MASK
        k1 = (k1 + (k1 >> 5) - 0x22222222) & MASK
        k2 = (k2 + 0x44444444 - ((k2 << 9) & MASK)) & MASK
        k3 = (k3 + 0x33333333 - ((k3 << 7) & MASK)) & MASK
        out.append((k0 + k1 + k2 + k3) & 0xFF)
    return bytes(out)


def xor(data, ks):
    return bytes(a ^ b for a, b in zip(data, ks))


def packet_a(command, job=0, body=b"", key=None):
    """16-byte header (key in clear, then flags, comp_size, decomp_size, job; little-endian),
    body not compressed (flag 0x01000000), keystream restarted for the body."""
    key = random.getrandbits(32) if key is None else key
    flags = (command & 0xFFFF) | 0x01000000
    hdr = struct.pack("<IIHHI", key, flags, len(body), len(body), job)
    ks = keystream_a(key, 16)
    return hdr[:4] + xor(hdr[4:], ks[4:16]) + xor(body, keystream_a(key, len(body)))


def parse_a(data):
    """Decodes family-A packets back to back; returns [(command, job, body)]."""
    out = []
    while len(data) >= 16:
        key = struct.unpack("<I", data[:4])[0]
        hdr = xor(data[4:16], keystream_a(key, 16)[4:16])
        flags, comp, decomp, job = struct.unpack("<IHHI", hdr)
        if len(data) < 16 + comp:
            break
        body = xor(data[16:16 + comp], keystream_a(key, comp))
        out.append((flags & 0xFFFF, job, body))
        data = data[16 + comp:]
    return out


def connect(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    if args.source:
        s.bind((args.source, 0))
    s.connect((args.host, args.port))
    return s


def read_http_response(s):
    """One HTTP/1.1 response with Content-Length: (status, headers dict, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            return None, {}, b""
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def header_names(kind):
    if kind == "x":
        return ["X-Session", "X-Status", "X-Size", "X-Sn"]
    if kind == "hhv":
        return ["HHV1", "HHV2", "HHV3", "HHV4"]
    return ["Ukrw%d" % i for i in range(4)]  # one common name plus a digit


def mode_header(args):
    path = ("/%024X" % random.getrandbits(96) if args.url == "hex24"
            else "/update?id=%08x" % random.getrandbits(32))
    names = header_names(args.names)
    s = connect(args)
    seen = []
    for i in range(args.count):
        values = [0, 0, 61456, 1] if i == 0 else [0, 0, 61456, i + 1]
        req = "POST %s HTTP/1.1\r\nAccept: */*\r\n" % path
        for n, v in zip(names, values):
            req += "%s: %d\r\n" % (n, v)
        req += ("User-Agent: Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1)\r\n"
                "Host: %s:%d\r\nContent-Length: 0\r\nConnection: %s\r\n\r\n"
                % (args.host, args.port, "Keep-Alive" if args.keep_alive else "close"))
        if i > 0 and not args.keep_alive:
            s.close()
            s = connect(args)
        s.sendall(req.encode())
        status, headers, body = read_http_response(s)
        seen.append({"status": status, "packets": [[c, j, len(b)] for c, j, b in parse_a(body)]})
    s.close()
    print(json.dumps({"mode": "header", "path": path, "responses": seen}))


def mode_body(args):
    s = connect(args)
    seen = []
    for i in range(args.count):
        s.sendall(packet_a(0x1000, job=i + 1))
        data = s.recv(4096)
        seen.append([[c, j, len(b)] for c, j, b in parse_a(data)])
    s.close()
    print(json.dumps({"mode": "body", "replies": seen}))


def mode_bytes(args, payload, name):
    s = connect(args)
    s.sendall(payload)
    try:
        data = s.recv(4096)
        closed = True
    except socket.timeout:
        data, closed = b"", False
    s.close()
    print(json.dumps({"mode": name, "sent": len(payload), "reply": data[:64].hex(),
                      "closed": closed}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["header", "body", "unknown", "garbage", "get"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--source")
    p.add_argument("--names", default="x", choices=["x", "hhv", "digit"])
    p.add_argument("--url", default="hex24", choices=["hex24", "update"])
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--keep-alive", action="store_true")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    random.seed(args.seed if args.seed is not None else os.getpid())
    if args.mode == "header":
        mode_header(args)
    elif args.mode == "body":
        mode_body(args)
    elif args.mode == "unknown":
        # A packet of a variant whose keystream sinkd has no table for: family-A framing under a
        # key schedule of other constants (as a new build would have), 16 + 24 bytes.
        key = random.getrandbits(32)
        hdr = struct.pack("<IIHHI", key, 0x01001000, 24, 24, 0)
        ks = bytes((b * 7 + 13) & 0xFF for b in keystream_a(key ^ 0x5A5A5A5A, 40))
        mode_bytes(args, hdr[:4] + xor(hdr[4:], ks[4:16]) + xor(bytes(24), ks[16:]), "unknown")
    elif args.mode == "garbage":
        mode_bytes(args, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(40),
                   "garbage")
    else:
        mode_bytes(args, b"GET / HTTP/1.1\r\nHost: c2\r\nUser-Agent: curl/8\r\n\r\n", "get")


if __name__ == "__main__":
    sys.exit(main())
