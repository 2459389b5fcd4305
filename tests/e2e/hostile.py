#!/usr/bin/env python3
"""hostile.py -- hostile peers for the e2e tests (loopback only, bounded in time and count).

Each mode opens connections from 127.0.2.0/24 (untrusted peers) to the server and misbehaves in
one way. PlugX packets are built here from the published keystream A (docs/plugx.md), not with
sinkd's code, so the test checks the server against an independent encoder.
"""
import os
import socket
import struct
import sys
import time

M = 0xFFFFFFFF


def keystream_a(key, n):
    k0 = k1 = k2 = k3 = key
    out = bytearray()
    for _ in range(n):
        k0 = (k0 + (k0 >> 3) - 0x11111111) & M
        k1 = (k1 + (k1 >> 5) - 0x22222222) & M
        k2 = (k2 + 0x44444444 - (k2 << 9)) & M
        k3 = (k3 + 0x33333333 - (k3 << 7)) & M
        out.append((k0 + k1 + k2 + k3) & 0xFF)
    return bytes(out)


def xor(data, ks):
    return bytes(a ^ b for a, b in zip(data, ks))


def packet(cmd, body=b"", comp_size=None, decomp_size=None, flags_extra=0x01000000, key=0x12345678):
    comp = len(body) if comp_size is None else comp_size
    decomp = len(body) if decomp_size is None else decomp_size
    plain = struct.pack("<IHHI", cmd | flags_extra, comp, decomp, 0)
    ks = keystream_a(key, 16)
    header = struct.pack("<I", key) + xor(plain, ks[4:16])
    return header + xor(body, keystream_a(key, len(body)))


assert keystream_a(0x12345678, 16).hex() == "a6282d18278a2aeac369b7747defc1dd"


def lznt1_bomb(chunks):
    """Chunks that each expand 5 bytes into 4096: one literal, then one maximal copy token."""
    out = bytearray()
    for _ in range(chunks):
        data = bytes([0b00000010, ord("A")]) + struct.pack("<H", (0 << 12) | (4095 - 3))
        out += struct.pack("<H", 0xB000 | (len(data) - 1)) + data
    return bytes(out)


_next_source = [0]


def connect(port):
    # Spread over 127.0.2.0/24 (untrusted loopback addresses) so the per-address connection
    # cap does not hide the behaviour each mode tests.
    _next_source[0] += 1
    source = f"127.0.2.{1 + _next_source[0] % 250}"
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def connect_from(source, port):
    """A connection from one chosen loopback address that ends with an RST when closed
    (SO_LINGER 0: no TIME_WAIT, so tests can open hundreds from the same address)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def hello_attempt(source, dest, port, timeout):
    """Connects from source to dest:port (IPv4 or IPv6 literals) and sends a PlugX hello:
    'reply', 'refused' (reset or closed) or 'dropped' (no handshake within timeout: the SYN
    was dropped, as by the listeners' ban filter)."""
    s = socket.socket(socket.AF_INET6 if ":" in dest else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.bind((source, 0))
    s.settimeout(timeout)
    try:
        s.connect((dest, port))
    except (socket.timeout, TimeoutError):
        s.close()
        return "dropped"
    try:
        s.settimeout(5)
        s.send(packet(0x1000))
        return "reply" if len(s.recv(64)) >= 16 else "refused"
    except (ConnectionResetError, BrokenPipeError):
        return "refused"
    finally:
        s.close()


def closed_by_server(s, wait=5.0):
    """How the server ended the connection: "reset" (RST), "eof" (FIN) or None (it did not)."""
    s.settimeout(wait)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return "eof"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except socket.timeout:
        return None


def expect_closed(name, s, wait=5.0, want="reset"):
    """A peer that broke a size or a rate is cut off with an RST (SO_LINGER 0: no FIN exchange,
    no TIME_WAIT); one whose bytes merely do not decode is a caller recorded as undecoded and let
    go with a FIN (want="eof"): "could not parse" alone never makes a peer hostile."""
    how = closed_by_server(s, wait)
    if how != want:
        print(f"hostile {name}: server ended the connection by {how or 'nothing (still open)'}, "
              f"expected {want}", file=sys.stderr)
        sys.exit(1)
    s.close()


def expect_reply(failure, s):
    """A PlugX reply (at least a header) within 5 s, or exit 1 saying `failure`."""
    s.settimeout(5)
    if len(s.recv(64)) < 16:
        print(f"hostile {failure}", file=sys.stderr)
        sys.exit(1)
    s.close()


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    if mode == "garbage":
        for i in range(count):
            s = connect(port)
            s.sendall(bytes((i * 37 + j * 11) & 0xFF for j in range(200)).replace(b"P", b"Q"))
            expect_closed(mode, s, want="eof")
    elif mode == "truncated":  # 10 of 16 header bytes, then silence: header timeout
        socks = []
        for _ in range(count):
            s = connect(port)
            s.sendall(packet(0x1000)[:10])
            socks.append(s)
        for s in socks:
            expect_closed(mode, s, 15)
    elif mode == "zero-length":  # a legal empty poll: must be answered, not refused
        s = connect(port)
        s.sendall(packet(0x1000))
        expect_reply("zero-length: no reply to an empty poll", s)
    elif mode == "huge-length":  # sizes at the 16-bit maximum with no body; HTTP 2^32-1
        s = connect(port)
        s.sendall(packet(0x1000, b"", comp_size=0xFFFF, decomp_size=0xFFFF))
        expect_closed(mode, s, 15)
        s = connect(port)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4294967295\r\n\r\n")
        expect_closed(mode + "-http", s)
    elif mode == "bomb":  # 16 chunks of 5 bytes expanding to 64 KiB, declared as 100 bytes
        body = lznt1_bomb(16)
        s = connect(port)
        s.sendall(packet(0x1001, body, decomp_size=100, flags_extra=0))
        expect_closed(mode, s)
    elif mode == "proxy-untrusted":
        s = connect(port)
        sig = b"\r\n\r\n\x00\r\nQUIT\n"
        s.sendall(sig + bytes([0x21, 0x11]) + struct.pack(">H", 12) + bytes([8, 8, 8, 8, 127, 0, 0, 1]) + struct.pack(">HH", 1234, port))
        expect_closed(mode, s, want="eof")
        s = connect(port)
        s.sendall(b"PROXY TCP4 8.8.8.8 127.0.0.1 1234 443\r\n")
        expect_closed(mode + "-v1", s, want="eof")
    elif mode == "drip":  # one byte per second of a valid packet: must be cut off
        socks = [connect(port) for _ in range(count)]
        data = packet(0x1000)
        deadline = time.time() + 20
        for i in range(len(data)):
            for s in list(socks):
                try:
                    s.sendall(data[i:i + 1])
                except OSError:
                    socks.remove(s)
            if not socks or time.time() > deadline:
                break
            time.sleep(1)
        for s in socks:
            expect_closed(mode, s, 15)
    elif mode == "silent":  # connect, say nothing for 1 s, then poll: argv PID deferred|accepted
        pid, expect = int(sys.argv[4]), sys.argv[5]
        fds_before = len(os.listdir(f"/proc/{pid}/fd"))
        socks = [connect(port) for _ in range(count)]
        time.sleep(1.0)
        grown = len(os.listdir(f"/proc/{pid}/fd")) - fds_before
        # Deferred: the kernel holds them, no descriptor in the server. Accepted: one each.
        if (expect == "deferred" and grown >= count // 10) or (expect == "accepted" and grown < count):
            print(f"hostile silent: server descriptors grew by {grown} for {count} silent "
                  f"connections, expected them {expect}", file=sys.stderr)
            sys.exit(1)
        for s in socks:  # speaking late is fine: every poll is answered
            s.sendall(packet(0x1000))
        for s in socks:
            expect_reply("silent: no reply to a poll sent after a silence", s)
        print(f"silent: {count} connections {expect}, descriptors grew by {grown}, all answered")
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
