#!/usr/bin/env python3
"""tsa_server.py -- a throwaway RFC 3161 time-stamping authority on loopback for the e2e tests:
HTTP POST application/timestamp-query in, `openssl ts -reply` out (OpenSSL signs, not sinkd).
Paths that misbehave on purpose: /status500, /huge (a body larger than any reply), /garbage
(bytes that are no TimeStampResp), /replay (the reply to the first request it ever answered).
Usage: tsa_server.py PORTFILE TSA_DIR ; binds 127.0.0.1 only, exits after 300 s."""
import http.server
import os
import subprocess
import sys
import threading

PORTFILE, TSA_DIR = sys.argv[1], sys.argv[2]
first_reply = []


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/timestamp-reply"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        query = self.rfile.read(min(n, 65536))
        if self.headers.get("Content-Type") != "application/timestamp-query":
            return self.send(415, b"want application/timestamp-query", "text/plain")
        if self.path == "/status500":
            return self.send(500, b"down", "text/plain")
        if self.path == "/huge":
            return self.send(200, b"\0" * (300 * 1024))
        if self.path == "/garbage":
            return self.send(200, os.urandom(700))
        qpath = os.path.join(TSA_DIR, "q.%d.tsq" % threading.get_ident())
        rpath = qpath[:-4] + ".tsr"
        with open(qpath, "wb") as f:
            f.write(query)
        subprocess.run(["openssl", "ts", "-reply", "-queryfile", qpath, "-inkey",
                        os.path.join(TSA_DIR, "tsa.key"), "-signer", os.path.join(TSA_DIR, "tsa.pem"),
                        "-config", os.path.join(TSA_DIR, "tsa.cnf"), "-out", rpath],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(rpath, "rb") as f:
            reply = f.read()
        if not first_reply:
            first_reply.append(reply)
        self.send(200, first_reply[0] if self.path == "/replay" else reply)


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
threading.Timer(300, server.shutdown).start()
server.serve_forever()
