#!/usr/bin/env python3
"""scaleout.py -- bench/scaleout.sh's driver, run under tests/pg/with_postgres.sh (SINKD_PG_URL).

Runs one phase per layout: NODES sinkd nodes on NODES loopback addresses (127.0.0.11, .12, ...),
each its own state directory, key and node name, following into one PostgreSQL database, each
called by one `sinkd swarm` process of its own (every process stays under the per-process
descriptor limit); then the figures of the run's steady window: bots held (connections open at
the nodes, from their /metrics), contacts/s, registry lag (max and at the end, and how long the
followers took to catch up once the swarms stopped), CPU per contact (the nodes, PostgreSQL's
processes, the swarms), memory per bot (each node's and swarm's RSS growth per connection it
holds; the kernel's, box-wide slab growth per bot, both ends of its connection).
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_s(pid):
    """User + system CPU seconds of a process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError):
        return None


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KB
    except (OSError, IndexError):
        return None


def slab_kb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    return 0


def postgres_pids():
    """Every PostgreSQL server process (postmaster, backends, WAL writer, checkpointer...)."""
    pids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == "postgres":
                        pids.append(int(p))
            except OSError:
                pass
    return pids


def metrics(addr):
    """A node's /metrics as {name: value}, a labelled family's samples summed."""
    out = {}
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(3))
    return out


def lag(m):
    """A node's registry lag now: durable log entries not yet applied (its metrics' own lag
    figure is the lag at the follower's last commit, which a follower waiting on its database
    does not move)."""
    if "sinkd_log_entries" not in m or "sinkd_registry_applied_entries" not in m:
        return 0
    return max(m["sinkd_log_entries"] - m["sinkd_registry_applied_entries"], 0)


def dir_bytes(path):
    """Bytes of the files under path (the node's log, journal, tiles, keys)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def free_port():
    """A port nobody listens on, on any address (the nodes share it on their own addresses)."""
    for _ in range(200):
        p = 20000 + int.from_bytes(os.urandom(2), "big") % 25000
        busy = subprocess.run(["ss", "-Htln", f"sport = :{p}"], capture_output=True, text=True)
        if not busy.stdout.strip():
            return p
    sys.exit("scaleout: no free port")


def psql(url, sql):
    return subprocess.run([f"{os.environ['SINKD_PG_BIN']}/psql", "-X", "-qAt", "-d", url, "-c",
                           sql], check=True, capture_output=True, text=True).stdout.strip()


def phase(a, label, nodes, bots, db):
    """One run; returns its figures."""
    base = os.environ["SINKD_PG_URL"]
    subprocess.run([f"{os.environ['SINKD_PG_BIN']}/createdb", "-h", os.environ["SINKD_PG_HOST"],
                    "-p", os.environ["SINKD_PG_PORT"], "-U", "sinkd", db], check=True)
    url = base.replace("/sinkd?", f"/{db}?", 1)
    port, mport = free_port(), free_port()
    root = os.path.join(a.dir, db)
    os.makedirs(root)
    procs, node_pids, swarm_pids = [], [], []
    as_root = ["--allow-root"] if os.getuid() == 0 else []

    def stop_all():
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    try:
        addrs = [f"127.0.0.{11 + i}" for i in range(nodes)]
        for i, ad in enumerate(addrs):
            d = os.path.join(root, f"node{i}")
            os.makedirs(d)
            err = open(os.path.join(d, "serve.log"), "w")
            p = subprocess.Popen(
                [a.sinkd, "serve", *as_root, "--state", os.path.join(d, "state"),
                 "--listen", f"{ad}:{port}", "--node", f"node{i}", "--workers", "1",
                 "--trusted-proxy", "127.0.0.0/8", "--max-connections", str(a.max_connections),
                 "--metrics-listen", f"{ad}:{mport}", "--registry", url,
                 "--ready-file", os.path.join(d, "ready"), *a.serve_opts.split()], stderr=err)
            procs.append(p)
            node_pids.append(p.pid)
        deadline = time.time() + 60
        for i in range(nodes):
            ready = os.path.join(root, f"node{i}", "ready")
            while not os.path.exists(ready) or os.path.getsize(ready) == 0:
                if procs[i].poll() is not None or time.time() > deadline:
                    sys.exit(f"scaleout: node{i} did not start: " +
                             open(os.path.join(root, f"node{i}", "serve.log")).read()[-2000:])
                time.sleep(0.1)
        time.sleep(1)
        pg = postgres_pids()
        t0 = time.time()
        base_rss = [rss_kb(p) for p in node_pids]
        base_slab = slab_kb()
        base_cpu_nodes = sum(cpu_s(p) or 0 for p in node_pids)
        base_cpu_pg = sum(cpu_s(p) or 0 for p in pg)
        share = [bots // nodes + (1 if i < bots % nodes else 0) for i in range(nodes)]
        for i, ad in enumerate(addrs):
            out = open(os.path.join(root, f"swarm{i}.txt"), "w")
            p = subprocess.Popen(
                [a.sinkd, "swarm", "--target", f"{ad}:{port}", "--bots", str(share[i]),
                 "--concurrency", str(share[i]), "--seed", str(1000 * (nodes + 1) + i),
                 "--duration", str(a.duration), "--heartbeat-ms", str(a.heartbeat_ms),
                 "--gone-share", "0", "--source-net", f"127.{20 + i}.0.0/24",
                 "--json", os.path.join(root, f"swarm{i}.json")], stdout=out, stderr=out)
            procs.append(p)
            swarm_pids.append(p.pid)
        samples = []
        swarms = procs[nodes:]
        limit = time.time() + a.duration + 120
        caught_up = None
        while time.time() < limit:
            s = {"t": time.time() - t0, "nodes": []}
            for i, ad in enumerate(addrs):
                try:
                    m = metrics(f"{ad}:{mport}")
                except OSError:
                    m = {}
                s["nodes"].append({"m": m, "rss": rss_kb(node_pids[i])})
            s["slab"] = slab_kb()
            s["disk"] = sum(dir_bytes(os.path.join(root, f"node{i}", "state")) for i in range(nodes))
            s["cpu_nodes"] = sum(cpu_s(p) or 0 for p in node_pids) - base_cpu_nodes
            s["cpu_pg"] = sum(cpu_s(p) or 0 for p in pg) - base_cpu_pg
            s["cpu_swarm"] = sum(cpu_s(p) or 0 for p in swarm_pids)
            s["swarm_rss"] = [rss_kb(p) for p in swarm_pids]
            s["swarm_running"] = sum(p.poll() is None for p in swarms)
            samples.append(s)
            behind = sum(lag(n["m"]) for n in s["nodes"])
            if s["swarm_running"] == 0:
                if behind == 0:
                    caught_up = s["t"]
                    break
            time.sleep(a.sample_s)
        # The swarms stop calling at their duration (they exit a moment later).
        swarm_end = float(a.duration)
        # A node's stop writes each bot's rolled-up polls of the interval so far (one heartbeats
        # record per bot) and waits for its follower to apply everything durable.
        t_stop = time.time()
        for p in procs[:nodes]:
            p.send_signal(signal.SIGTERM)
        for p in procs[:nodes]:
            try:
                p.wait(timeout=max(1, t_stop + 900 - time.time()))
            except subprocess.TimeoutExpired:
                pass
        stop_s = time.time() - t_stop
        stopped = sum(p.poll() is not None for p in procs[:nodes])
        registry_lines = [l.strip() for i in range(nodes)
                          for l in open(os.path.join(root, f"node{i}", "serve.log"))
                          if "registry:" in l and "records in" in l]
        swarm_json = [json.load(open(os.path.join(root, f"swarm{i}.json"))) for i in range(nodes)]
        reg_bots = psql(url, "SELECT count(*) FROM bot")
        reg_contacts = psql(url, "SELECT coalesce(sum(contacts), 0) FROM day_cc")
    finally:
        stop_all()

    def held(s):
        return sum(n["m"].get("sinkd_connections_open", 0) for n in s["nodes"])

    def contacts(s):
        return sum(n["m"].get("sinkd_contacts_total", 0) for n in s["nodes"])

    # The steady window: after every bot's first call (the swarm spreads them over the first 40 %
    # of its run) until just before it stops.
    win = [s for s in samples if a.duration * 0.5 <= s["t"] <= a.duration * 0.95]
    if len(win) < 2:
        sys.exit("scaleout: too few samples in the steady window")
    w0, w1 = win[0], win[-1]
    dt = w1["t"] - w0["t"]
    dc = contacts(w1) - contacts(w0)
    peak = max(win, key=held)
    lags = [max(lag(n["m"]) for n in s["nodes"]) for s in samples]
    node_user = [(n["rss"] - base_rss[i]) * 1024 / max(n["m"].get("sinkd_connections_open", 0), 1)
                 for i, n in enumerate(peak["nodes"]) if n["rss"] is not None]
    sw_conn = [held_i for held_i in
               (n["m"].get("sinkd_connections_open", 0) for n in peak["nodes"])]
    swarm_user = [rss * 1024 / max(c, 1) for rss, c in zip(peak["swarm_rss"], sw_conn)
                  if rss is not None]
    for line in registry_lines:
        print(f"# {label}: {line}", flush=True)
    return {
        "label": label,
        "nodes": nodes,
        "bots": bots,
        "bots held (connections open at the nodes, steady window: mean / peak)":
            "%.0f / %.0f" % (sum(held(s) for s in win) / len(win), held(peak)),
        "bots replied / run (swarms)": "%d / %d" % (
            sum(j["bots_replied"] for j in swarm_json), sum(j["bots_run"] for j in swarm_json)),
        "swarm errors (reset, timeout, protocol)": "%d, %d, %d" % tuple(
            sum(j["errors"][k] for j in swarm_json) for k in ("reset", "timeout", "protocol")),
        "contacts/s (steady window)": "%.0f" % (dc / dt),
        "registry lag, entries: max (largest node) / at the end of the window":
            "%.0f / %.0f" % (max(lags), max(lag(n["m"]) for n in w1["nodes"])),
        "registry caught up after the swarms stopped (within a sample, %.0f s)" % a.sample_s: (
            "%.0f s" % max(caught_up - swarm_end, 0) if caught_up is not None
            else "not within 120 s"),
        "registry rows: bots / per-day contacts": "%s / %s" % (reg_bots, reg_contacts),
        "CPU per contact, µs: nodes / PostgreSQL / swarms": "%.1f / %.1f / %.1f" % (
            (w1["cpu_nodes"] - w0["cpu_nodes"]) * 1e6 / dc,
            (w1["cpu_pg"] - w0["cpu_pg"]) * 1e6 / dc,
            (w1["cpu_swarm"] - w0["cpu_swarm"]) * 1e6 / dc),
        "memory per bot, user, B: a node's RSS growth / a swarm's RSS, per connection (mean)":
            "%.0f / %.0f" % (sum(node_user) / len(node_user), sum(swarm_user) / len(swarm_user)),
        "memory per bot, kernel, B: slab growth box-wide per bot (both ends of its connection)":
            "%.0f" % ((peak["slab"] - base_slab) * 1024 / max(held(peak), 1)),
        "log on disk per contact, B (state directories' growth in the window)": "%.0f" % (
            (w1["disk"] - w0["disk"]) / dc),
        "log entries per contact (window)": "%.3f" % (
            (sum(n["m"].get("sinkd_log_entries", 0) for n in w1["nodes"]) -
             sum(n["m"].get("sinkd_log_entries", 0) for n in w0["nodes"])) / dc),
        "nodes stopped / stop time (rolled-up polls written, registry drained)":
            "%d of %d / %.0f s" % (stopped, nodes, stop_s),
        "node RSS at the peak, MiB (largest)": "%.0f" % (
            max(n["rss"] or 0 for n in peak["nodes"]) / 1024),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sinkd", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--duration", type=int, default=200)
    ap.add_argument("--heartbeat-ms", type=int, default=20000)
    ap.add_argument("--sample-s", type=float, default=2.0)
    ap.add_argument("--max-connections", type=int, default=18500)
    ap.add_argument("--single", action="store_true", help="also the single-node figure")
    ap.add_argument("--serve-opts", default="", help="more serve options for every node")
    ap.add_argument("nodes", type=int)
    ap.add_argument("bots", type=int)
    a = ap.parse_args()
    runs = []
    load0 = open("/proc/loadavg").read().split()[:3]
    if a.single:
        runs.append(phase(a, "1 node", 1, a.bots // a.nodes, "scaleout_single"))
        print("# single node:", json.dumps(runs[-1]), flush=True)
    runs.append(phase(a, f"{a.nodes} nodes", a.nodes, a.bots, "scaleout_nodes"))
    load1 = open("/proc/loadavg").read().split()[:3]
    print(f"# load before {' '.join(load0)}, after {' '.join(load1)}; heartbeat mean "
          f"{a.heartbeat_ms} ms, {a.duration} s per run, steady window "
          f"{a.duration * 0.5:.0f}-{a.duration * 0.95:.0f} s")
    keys = [k for k in runs[-1] if k not in ("label", "nodes", "bots")]
    head = ["figure"] + [f"{r['label']}, {r['bots']} bots" for r in runs]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for k in keys:
        print("| " + " | ".join([k] + [str(r[k]) for r in runs]) + " |")


if __name__ == "__main__":
    main()
