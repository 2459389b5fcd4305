#!/usr/bin/env bash
# report_test.sh -- CERT reports through the real binary: a swarm against the server, then
# per-country Shadowserver CSVs (exact header, one country per file, counts equal to the swarm's),
# IntelMQ lines that pass the harmonization check with AS names, and a rebuilt registry that gives
# the same summary.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --tags "$SINKD_SOURCE_DIR/data/tags/example-sectors.csv"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 300 --duration 5 \
    --source-net 127.0.1.0/24 --json "$E2E_DIR/swarm.json" >"$E2E_DIR/swarm.txt" ||
    fail "swarm exited non-zero"
stop_server
# The server's follower drains the durable log before it exits, so the registry is complete
# without --catch-up; the rows must already be there.
grep -q "sinkd: registry: " "$E2E_DIR/serve.log" || fail "server did not report its registry follower"

csv="$E2E_DIR/csv"
jl="$E2E_DIR/intelmq"
mkdir -p "$csv" "$jl"
"$SINKD_BINARY" report --justification "$E2E_WHY" --state "$state" --format csv --split country --out "$csv" \
    2>"$E2E_DIR/report.err" || fail "csv report failed: $(cat "$E2E_DIR/report.err")"
"$SINKD_BINARY" report --justification "$E2E_WHY" --state "$state" --format intelmq --split country --out "$jl" \
    2>>"$E2E_DIR/report.err" || fail "intelmq report failed: $(cat "$E2E_DIR/report.err")"
"$SINKD_BINARY" report --state "$state" --format summary-json >"$E2E_DIR/summary1.json" ||
    fail "summary failed"
"$SINKD_BINARY" report --state "$state" --format summary >"$E2E_DIR/summary1.txt" ||
    fail "text summary failed"
grep -q "AS names left out" "$E2E_DIR/report.err" && fail "AS names not loaded: $(cat "$E2E_DIR/report.err")"

python3 - "$E2E_DIR/swarm.json" "$csv" "$jl" "$E2E_DIR/summary1.json" \
    "$SINKD_SOURCE_DIR/tests/vectors/intelmq-harmonization.json" <<'PY' || fail "reports do not match"
import csv, glob, ipaddress, json, os, re, sys
swarm = json.load(open(sys.argv[1]))
csv_dir, jl_dir = sys.argv[2], sys.argv[3]
summary = json.load(open(sys.argv[4]))
harm = json.load(open(sys.argv[5]))["event"]
bad = []
def check(ok, msg):
    if not ok:
        bad.append(msg)

header = ("timestamp,protocol,src_ip,src_port,src_asn,src_geo,src_region,src_city,src_hostname,"
          "src_naics,src_sector,device_vendor,device_type,device_model,severity,dst_ip,dst_port,"
          "dst_asn,dst_geo,dst_region,dst_city,dst_hostname,dst_naics,dst_sector,public_source,"
          "infection,family,tag,application,version,event_id")
exact = ",".join('"%s"' % c for c in header.split(","))
want = {cc: n for cc, n in swarm["per_country"].items() if n > 0}
check(swarm["bots_replied"] == swarm["bots_run"] == 300, f"swarm: {swarm['bots_run']} run, {swarm['bots_replied']} replied to")
got = {}
for path in sorted(glob.glob(os.path.join(csv_dir, "*.csv"))):
    cc = os.path.basename(path)[:-4]
    with open(path, newline="") as f:
        first = f.readline().rstrip("\r\n")
        check(first == exact, f"{cc}.csv header {first!r}")
        rows = list(csv.DictReader(f, fieldnames=header.split(",")))
    check(all(r["src_geo"] == cc for r in rows), f"{cc}.csv holds other countries' rows")
    check(all(r["severity"] == "critical" and r["infection"] == "plugx" for r in rows), f"{cc}.csv fields")
    check(all(int(r["src_port"]) > 0 for r in rows), f"{cc}.csv src_port")
    got[cc] = len(rows)
check(got == want, f"per-country bots: report {got} vs swarm {want}")
check(summary["unique_bots"] == 300, f"summary unique_bots {summary['unique_bots']}")
check({r["cc"]: r["bots"] for r in summary["top_countries"]} ==
      dict(sorted(want.items(), key=lambda kv: -kv[1])[:10]) or len(want) > 10, "summary top countries")

# IntelMQ: every key is a harmonization key (extra.* inside extra) and every value has its type.
def valid(key, v):
    t = harm[key]["type"]
    if t in ("String", "LowercaseString", "ClassificationType", "FQDN", "URL"):
        return isinstance(v, str) and v != "" and (t != "LowercaseString" or v == v.lower())
    if t in ("Integer", "ASN"):
        return isinstance(v, int) and (t != "ASN" or 0 < v < 2**32)
    if t == "IPAddress":
        ipaddress.ip_address(v); return True
    if t == "DateTime":
        return re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", v) is not None
    if t == "UppercaseString":
        return v == v.upper()
    if t == "Accuracy":
        return 0 <= v <= 100
    return True
names = 0
lines = 0
for path in glob.glob(os.path.join(jl_dir, "*.jsonl")):
    cc = os.path.basename(path)[:-6]
    for line in open(path):
        d = json.loads(line)
        lines += 1
        for k, v in d.items():
            if k.startswith("extra."):
                continue
            check(k in harm, f"not a harmonization key: {k}")
            if k in harm:
                check(valid(k, v), f"{k}={v!r} is not a {harm[k]['type']}")
        check(d.get("source.geolocation.cc", "ZZ") == cc, f"{cc}.jsonl has {d.get('source.geolocation.cc')}")
        if "source.asn" in d and d.get("source.as_name"):
            names += 1
check(lines == 300, f"intelmq lines {lines}")
check(names > 0, "no source.as_name in any IntelMQ line")
check(any(r.get("as_name") for r in summary["top_asns"]), "summary top ASNs carry no names")
if bad:
    print("\n".join(bad[:20]), file=sys.stderr)
    sys.exit(1)
PY

grep -q "^top ASNs" "$E2E_DIR/summary1.txt" || fail "text summary has no ASN table"

# The registry is derived: rebuilt from the log, it gives the same summary.
"$SINKD_BINARY" registry rebuild --state "$state" >"$E2E_DIR/rebuild.txt" || fail "rebuild failed"
grep -q "registry rebuilt" "$E2E_DIR/rebuild.txt" || fail "rebuild output: $(cat "$E2E_DIR/rebuild.txt")"
"$SINKD_BINARY" report --state "$state" --format summary-json >"$E2E_DIR/summary2.json" ||
    fail "summary after rebuild failed"
diff <(grep -v '"until"\|"since"' "$E2E_DIR/summary1.json") \
    <(grep -v '"until"\|"since"' "$E2E_DIR/summary2.json") >"$E2E_DIR/rebuild.diff" ||
    fail "summary differs after rebuild: $(head -20 "$E2E_DIR/rebuild.diff")"

# Bad input is refused with a message, not a crash.
"$SINKD_BINARY" report --state "$state" --since 2026-02-31 2>"$E2E_DIR/bad.err" && fail "bad date accepted"
grep -q "not a calendar date" "$E2E_DIR/bad.err" || fail "bad date message: $(cat "$E2E_DIR/bad.err")"
echo "report e2e: ok"
