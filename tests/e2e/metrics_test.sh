#!/usr/bin/env bash
# metrics_test.sh -- GET /metrics on a running server: valid Prometheus text whose counters agree
# with what the swarm saw and what the log holds; 404 / 405 / 400 for anything else; a flood of
# silent connections to the metrics port is bounded (METRICS_MAX_CONNS, then dropped at once;
# timed out after METRICS_TIMEOUT_MS) and costs honest bots nothing; a metrics port in use stops
# serve from starting, naming it.
source "$(dirname "$0")/lib.sh"
state="$E2E_DIR/state"
port=$(free_port)
mport=$(free_port)
start_server "$state" "$port" --workers 2 --metrics-listen "127.0.0.1:$mport"
grep -q "metrics on http://127.0.0.1:$mport/metrics" "$E2E_DIR/serve.log" || fail "no metrics line in the log"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 300 --duration 3 --concurrency 300 \
    --source-net 127.0.1.0/24 --json "$E2E_DIR/swarm.json" >/dev/null || fail "swarm exited non-zero"
# The workers publish their counters every 250 ms: wait for the state (every reply the swarm got
# counted, every contact durable), not for a time, so a loaded box only makes it slower.
python3 - "$mport" "$E2E_DIR/swarm.json" <<'PY' || fail "the counters never caught up with the swarm"
import json, re, sys, time, urllib.request
swarm = json.load(open(sys.argv[2]))
for _ in range(200):
    text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
    g = re.search(r"^sinkd_replies_total ([0-9]+)$", text, re.M)
    if g and int(g.group(1)) >= swarm["replies_received"]:
        sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
PY
"$SINKD_BINARY" contacts --state "$state" --summary >"$E2E_DIR/summary.json" || fail "contacts --summary"

python3 - "$mport" "$E2E_DIR/swarm.json" "$E2E_DIR/summary.json" <<'PY' || fail "metrics do not agree"
import json, re, socket, sys, time, urllib.request, urllib.error
port = int(sys.argv[1])
swarm = json.load(open(sys.argv[2]))
summary = json.load(open(sys.argv[3]))
base = f"http://127.0.0.1:{port}"
def check(cond, what):
    if not cond:
        print("check failed:", what, file=sys.stderr)
        sys.exit(1)
r = urllib.request.urlopen(base + "/metrics", timeout=5)
check(r.status == 200, "status")
check(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), "content type")
text = r.read().decode()
m, typed = {}, set()
for line in text.splitlines():
    if line.startswith("# TYPE "):
        typed.add(line.split()[2])
        continue
    if line.startswith("#"):
        continue
    g = re.fullmatch(r'([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? ([0-9]+)', line)
    check(g is not None, f"not exposition format: {line!r}")
    check(g.group(1) in typed, f"{g.group(1)} has no TYPE line")
    m[g.group(1) + (g.group(2) or "")] = int(g.group(4))
contacts = sum(v for k, v in m.items() if k.startswith("sinkd_contacts_total{"))
check(swarm["bots_replied"] == 300, f"swarm: {swarm['bots_replied']} of 300 bots got a reply")
check(m["sinkd_replies_total"] >= swarm["replies_received"] > 0,
      f"replies {m['sinkd_replies_total']} < swarm's {swarm['replies_received']}")
# Every message counted is in the log, or (a rolled-up poll) in its bot's heartbeats entry until
# the interval ends.
pending = m.get("sinkd_heartbeats_pending", 0)
check(contacts == summary["contacts"] + pending,
      f"contacts {contacts} != log's {summary['contacts']} + pending {pending}")
check(m['sinkd_contacts_total{type="hello"}'] >= 300, "hellos")
check(m["sinkd_connections_accepted_total"] >= 300, "accepted")
check(m["sinkd_log_entries"] >= summary["records"] > 0, "log entries (records + node records)")
check(m["sinkd_log_stalled"] == 0 and m["sinkd_log_commit_errors_total"] == 0, "log healthy")
check(m["sinkd_registry_up"] == 1, "registry up")
check(m["sinkd_log_durable_latency_microseconds{quantile=\"0.99\"}"] > 0, "latency")
check(m["sinkd_build_info{version=\"0.1.0\",family=\"plugx\"}"] == 1, "build info")
check(abs(m["sinkd_start_time_seconds"] - time.time()) < 120, "start time")

def status(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=body)
    try:
        return urllib.request.urlopen(req, timeout=5).status, None
    except urllib.error.HTTPError as e:
        return e.code, e.headers
check(status("GET", "/nothing")[0] == 404, "404")

# /metrics.json: the same families and samples as the text, labels as objects.
text_again = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
r = urllib.request.urlopen(base + "/metrics.json", timeout=5)
check(r.headers["Content-Type"] == "application/json", "json content type")
doc = json.loads(r.read())
flat = {}
for name, fam in doc.items():
    check(name in typed and fam["type"] in ("counter", "gauge", "summary") and fam["help"], f"json family {name}")
    for smp in fam["samples"]:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(smp["labels"].items()))
        flat[name + ("{" + labels + "}" if labels else "")] = smp["value"]
m2 = {}
for line in text_again.splitlines():
    if not line.startswith("#"):
        key, value = line.rsplit(" ", 1)
        if "{" in key:  # label order as sorted in the JSON
            name, rest = key.split("{", 1)
            key = name + "{" + ",".join(sorted(re.findall(r'[a-z_]+="[^"]*"', rest))) + "}"
        m2[key] = int(value)
check(set(flat) == set(m2), f"json and text differ in samples: {set(flat) ^ set(m2)}")
# The scrapes themselves are not bot connections; the registry's lag is read against the log's
# size at each request, and the log may grow between the two (an access record, a checkpoint's
# node record), as may what the registry has applied.
moving = {"sinkd_connections_open", "sinkd_registry_lag_entries", "sinkd_registry_behind_seconds",
          "sinkd_registry_applied_entries", "sinkd_log_entries", "sinkd_log_journal_base",
          "sinkd_log_checkpoints_removed_total"}
for k in m2:
    check(flat[k] == m2[k] or k.split("{")[0] in moving, f"{k}: json {flat[k]} != text {m2[k]}")
json.dump(doc, open(sys.argv[3] + ".metrics.json", "w"))

# The dashboard: its page and files, built into the binary byte for byte, under a strict CSP.
import os
src = os.environ["SINKD_SOURCE_DIR"] + "/src/net/dashboard/"
for path, ctype, fname in (("/", "text/html", "dashboard.html"), ("/index.html", "text/html", "dashboard.html"),
                           ("/dashboard.js", "text/javascript", "dashboard.js"),
                           ("/dashboard.css", "text/css", "dashboard.css")):
    r = urllib.request.urlopen(base + path, timeout=5)
    check(r.headers["Content-Type"].startswith(ctype), f"{path} content type {r.headers['Content-Type']}")
    csp = r.headers["Content-Security-Policy"] or ""
    check("default-src 'none'" in csp and "script-src 'self'" in csp, f"{path} CSP {csp!r}")
    check(r.headers["X-Content-Type-Options"] == "nosniff", f"{path} nosniff")
    body = r.read()
    check(body == open(src + fname, "rb").read(), f"{path} differs from src/net/dashboard/{fname}")
    if fname == "dashboard.js":
        open(sys.argv[3] + ".dashboard.js", "wb").write(body)
code, headers = status("POST", "/metrics", b"x")
check(code == 405 and headers["Allow"] == "GET, HEAD", "405 with Allow")
def raw(data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except ConnectionResetError:
        pass
    s.close()
    return got
check(raw(b"XYZ\r\n\r\n").startswith(b"HTTP/1.1 400 "), "400 for garbage")
# HEAD (monitors probe with it): GET's status and headers, Content-Length included, no body.
for path, fname in (("/", "dashboard.html"), ("/dashboard.js", "dashboard.js")):
    got = raw(b"HEAD " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, rest = got.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200 "), f"HEAD {path}: {head[:40]!r}")
    clen = re.search(rb"Content-Length: (\d+)", head)
    want = len(open(src + fname, "rb").read())
    check(clen is not None and int(clen.group(1)) == want, f"HEAD {path}: Content-Length {clen} != {want}")
    check(rest == b"", f"HEAD {path} sent a body of {len(rest)} bytes")
check(raw(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000).startswith(b"HTTP/1.1 400 "), "400 for a head over 8 KiB")

# Silent connections: 8 are held, the 9th is dropped at once; all go after the timeout.
held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(8)]
time.sleep(0.3)
extra = socket.create_connection(("127.0.0.1", port), timeout=1.5)
try:
    check(extra.recv(1) == b"", "a 9th connection got data")
except ConnectionResetError:
    pass
except socket.timeout:
    check(False, "a 9th connection was held, not dropped at once")
t0 = time.time()
for s in held:
    try:
        check(s.recv(1) == b"", "held connection got data")
    except ConnectionResetError:
        pass
waited = time.time() - t0
check(3.5 < waited + 0.3 < 8, f"silent connections closed after {waited:.1f} s (timeout 5 s)")
r = urllib.request.urlopen(base + "/metrics", timeout=5)
check(r.status == 200, "metrics after the flood")
PY

# The page's own logic (the dashboard.js the server sent) on the server's JSON, under Node.
node "$SINKD_SOURCE_DIR/tests/e2e/dashboard_check.js" "$E2E_DIR/summary.json.dashboard.js" \
    "$E2E_DIR/summary.json.metrics.json" "$E2E_DIR/summary.json" ||
    fail "the dashboard's summary disagrees with the server"

# Bots are served while the metrics port is flooded with silent connections.
python3 - "$mport" <<'PY' &
import socket, sys, time
conns = []
end = time.time() + 6
while time.time() < end:
    try:
        conns.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1))
    except OSError:
        pass
    conns = conns[-200:]
    time.sleep(0.01)
PY
flood=$!
E2E_PIDS+=("$flood")
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 100 --duration 3 --concurrency 100 \
    --source-net 127.0.1.0/24 --json "$E2E_DIR/swarm2.json" >/dev/null || fail "swarm under metrics flood"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["bots_replied"]==100 and sum(d["errors"].values())==0 else 1)' \
    "$E2E_DIR/swarm2.json" || fail "bots not all answered while the metrics port was flooded: $(cat "$E2E_DIR/swarm2.json")"
wait "$flood" || true
stop_server

# A metrics port in use: serve refuses to start and says which.
python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1",'"$mport"')); s.listen(); time.sleep(20)' &
E2E_PIDS+=($!)
sleep 0.3
rc=0
timeout 20 "$SINKD_BINARY" serve --allow-root --state "$E2E_DIR/state2" --listen "127.0.0.1:$(free_port)" \
    --metrics-listen "127.0.0.1:$mport" 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -ne 0 ] && grep -q "metrics listen 127.0.0.1:$mport: Address already in use" "$E2E_DIR/err" \
    || fail "metrics port in use: rc $rc, $(cat "$E2E_DIR/err")"
echo "metrics: OK"
