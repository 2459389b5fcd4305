#!/usr/bin/env python3
"""plugx_family_c.py -- PlugX keystream family C vectors, computed outside sinkd.

A short, independent transcription of the arithmetic of the public traffic decoder MITRE
chopshop `modules/plugx_tcp_decode.py` (Kyle Creyts, 2014; `crypt()` and
`decrypt_packed_string()`), written from the facts of that decoder, not from sinkd's C:

* constants (comptime, var1, var2, var3), default (0x0133543c, 0xd, 0x77, 0x59f5);
* a = key ^ comptime, c = key ^ var1; per byte: a += var2; b = a0 - a1; b ^= a2; b -= a3;
  c -= var3; b ^= c0; b -= c1; b ^= c2; b -= c3 (xN = byte N of x, LSB first, 8-bit
  arithmetic); the data byte is XORed with b;
* the keystream's first byte belongs to the packet's byte 0 (the clear key): the decoder runs
  crypt() over buf[0:16] and reads the flags from bytes 4..8;
* with flag 0x02000000 the decoder runs one crypt() over the whole buffer, otherwise it runs a
  fresh crypt() over buf[16:] for the body.

Usage: plugx_family_c.py            print the vector lines
       plugx_family_c.py --check F  exit 1 unless every line printed is in vectors file F
"""
import struct
import sys

CHOPSHOP_DEFAULT = (0x0133543C, 0x0000000D, 0x00000077, 0x000059F5)
SHARED_RUN = 0x02000000
UNCOMPRESSED = 0x01000000
M32 = 0xFFFFFFFF


def keystream(key, n, consts=CHOPSHOP_DEFAULT):
    comptime, var1, var2, var3 = consts
    a = (key ^ comptime) & M32
    c = (key ^ var1) & M32
    out = bytearray()
    for _ in range(n):
        a = (a + var2) & M32
        b = a & 0xFF
        b = (b - ((a >> 8) & 0xFF)) & 0xFF
        b ^= (a >> 16) & 0xFF
        b = (b - ((a >> 24) & 0xFF)) & 0xFF
        c = (c - var3) & M32
        b ^= c & 0xFF
        b = (b - ((c >> 8) & 0xFF)) & 0xFF
        b ^= (c >> 16) & 0xFF
        b = (b - ((c >> 24) & 0xFF)) & 0xFF
        out.append(b)
    return bytes(out)


def xor(data, ks):
    return bytes(d ^ k for d, k in zip(data, ks))


def seal(key, flags, job, body):
    """A packet whose body is sent as is (the not-compressed flag): comp == decomp == len."""
    assert flags & UNCOMPRESSED or not body
    clear = struct.pack("<IIHHI", key, flags, len(body), len(body), job)
    head = clear[:4] + xor(clear[4:], keystream(key, 16)[4:])
    if flags & SHARED_RUN:
        return head + xor(body, keystream(key, 16 + len(body))[16:])
    return head + xor(body, keystream(key, len(body)))


def unseal(packet):
    """The decoder's own steps, to show the vectors decode back."""
    key = struct.unpack("<I", packet[:4])[0]
    head = packet[:4] + xor(packet[4:16], keystream(key, 16)[4:])
    flags = struct.unpack("<I", head[4:8])[0]
    if flags & SHARED_RUN:
        body = xor(packet, keystream(key, len(packet)))[16:]
    else:
        body = xor(packet[16:], keystream(key, len(packet) - 16))
    return head, flags, body


def vectors():
    body = b"sinkd family C vector"
    lines = [
        ("ks_c_12345678", keystream(0x12345678, 32)),
        # flags 0x00000001, sizes 0, job 0: the header every family has a vector for
        ("hdr_c_12345678", seal(0x12345678, 0x00000001, 0, b"")),
        # poll 0x1000 with a body sent as is, job 7; keystream restarted for the body
        ("pkt_c_restart_a1b2c3d4", seal(0xA1B2C3D4, UNCOMPRESSED | 0x1000, 7, body)),
        # the same with the shared-run flag: one keystream over header and body
        ("pkt_c_shared_a1b2c3d4", seal(0xA1B2C3D4, SHARED_RUN | UNCOMPRESSED | 0x1000, 7, body)),
    ]
    for name, packet in lines[2:]:
        head, flags, got = unseal(packet)
        assert got == body and flags & 0xFFFF == 0x1000, name
    return ["%s %s" % (name, data.hex()) for name, data in lines]


def main(argv):
    lines = vectors()
    if len(argv) == 3 and argv[1] == "--check":
        with open(argv[2]) as f:
            have = {line.strip() for line in f}
        missing = [line for line in lines if line not in have]
        for line in missing:
            print("%s: missing or different: %s" % (argv[2], line), file=sys.stderr)
        return 1 if missing else 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
