// dashboard.js -- the operator's page: polls /metrics.json (the samples of /metrics) every 2 s
// and shows health, rates and totals. summarize() and perSecond() are pure, so
// tests/e2e/dashboard_check.js runs them under Node against a live server's JSON.
"use strict";

// The value of metric `name` whose labels include every pair in `want` (0 when absent).
function sampleValue(metrics, name, want) {
  const family = metrics[name];
  if (!family) return 0;
  for (const s of family.samples) {
    const labels = s.labels || {};
    if (Object.keys(want || {}).every((k) => labels[k] === want[k])) return s.value;
  }
  return 0;
}

// Every sample of `name` keyed by the value of label `label`.
function byLabel(metrics, name, label) {
  const out = {};
  const family = metrics[name];
  if (!family) return out;
  for (const s of family.samples) out[(s.labels || {})[label]] = s.value;
  return out;
}

// What remediation really does: from the policy in force and --enforce (never "dry-run" while an
// authorisation enforces), then from what was decided and sent.
function policyState(metrics, sent, decisions) {
  if (!("sinkd_policy_info" in metrics)) return sent > 0 ? "commands sent" : "no policy";
  const enforcing = (metrics.sinkd_policy_authorisations || { samples: [] }).samples
    .filter((s) => (s.labels || {}).effect === "enforce")
    .reduce((a, s) => a + s.value, 0);
  if (sent > 0) return "ENFORCING, commands sent";
  if (enforcing > 0) return (decisions["send"] || 0) > 0 ? "ENFORCING, send decided" : "ENFORCING";
  return "dry-run only";
}

// What the page shows, from one /metrics.json document.
function summarize(metrics, nowSeconds) {
  const build = (metrics.sinkd_build_info || { samples: [{ labels: {} }] }).samples[0].labels;
  const started = sampleValue(metrics, "sinkd_start_time_seconds");
  const registryPresent = "sinkd_registry_up" in metrics;
  const decisions = byLabel(metrics, "sinkd_decisions_total", "verdict");
  const sent = sampleValue(metrics, "sinkd_commands_sent_total");
  return {
    version: build.version || "",
    family: build.family || "",
    uptimeSeconds: started > 0 ? Math.max(0, nowSeconds - started) : 0,
    logStalled: sampleValue(metrics, "sinkd_log_stalled") === 1,
    commitErrors: sampleValue(metrics, "sinkd_log_commit_errors_total"),
    registry: !registryPresent ? "off" : sampleValue(metrics, "sinkd_registry_up") === 1 ? "up" : "stopped",
    registryLag: sampleValue(metrics, "sinkd_registry_lag_entries"),
    registryBehindSeconds: sampleValue(metrics, "sinkd_registry_behind_seconds"),
    remediation: policyState(metrics, sent, decisions),
    commandsSent: sent,
    commandsFailed: sampleValue(metrics, "sinkd_commands_failed_total"),
    capture: !("sinkd_raw_full" in metrics) ? "off" : sampleValue(metrics, "sinkd_raw_full") === 1 ? "stopped" : "on",
    bodiesKept: sampleValue(metrics, "sinkd_raw_bodies_kept_total"),
    counters: {
      connectionsOpen: sampleValue(metrics, "sinkd_connections_open"),
      accepted: sampleValue(metrics, "sinkd_connections_accepted_total"),
      replies: sampleValue(metrics, "sinkd_replies_total"),
      logEntries: sampleValue(metrics, "sinkd_log_entries"),
      commits: sampleValue(metrics, "sinkd_log_commits_total"),
      rejected: sampleValue(metrics, "sinkd_connections_rejected_total"),
      held: sampleValue(metrics, "sinkd_connections_held_total"),
      badPeers: sampleValue(metrics, "sinkd_bad_peers_total"),
      timeouts: sampleValue(metrics, "sinkd_timeouts_total"),
      bansMade: sampleValue(metrics, "sinkd_listener_bans_total"),
    },
    bansNow: sampleValue(metrics, "sinkd_listener_bans"),
    contacts: byLabel(metrics, "sinkd_contacts_total", "type"),
    decisions: decisions,
    latency: {
      p50: sampleValue(metrics, "sinkd_log_durable_latency_microseconds", { quantile: "0.5" }),
      p99: sampleValue(metrics, "sinkd_log_durable_latency_microseconds", { quantile: "0.99" }),
      max: sampleValue(metrics, "sinkd_log_durable_latency_max_microseconds"),
    },
  };
}

// Per-second rates of the counters in `cur` against `prev` taken `seconds` earlier; a counter
// that went down (the server restarted) starts again from its new value.
function perSecond(prev, cur, seconds) {
  const out = {};
  for (const k of Object.keys(cur)) {
    const before = prev && k in prev ? prev[k] : cur[k];
    out[k] = seconds > 0 ? Math.max(0, cur[k] - (cur[k] >= before ? before : 0)) / seconds : 0;
  }
  return out;
}

function formatDuration(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return (d ? d + " d " : "") + (d || h ? h + " h " : "") + m + " min";
}

function formatCount(n) {
  return Math.round(n).toLocaleString("en");
}

if (typeof module !== "undefined") {
  module.exports = { summarize, perSecond, sampleValue, byLabel, formatDuration };
}

if (typeof document !== "undefined") {
  let previous = null;

  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  const badge = (id, text, cls) => {
    const b = document.getElementById(id);
    b.textContent = text;
    b.className = "badge " + cls;
  };
  const fillTable = (id, rows) => {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren(...rows.map((cells) => {
      const tr = el("tr");
      cells.forEach((c) => tr.appendChild(el("td", c)));
      return tr;
    }));
  };

  const render = (sum, rates, contactRates) => {
    document.getElementById("build").textContent = sum.version + " " + sum.family;
    document.getElementById("uptime").textContent = "up " + formatDuration(sum.uptimeSeconds);
    badge("log-state", sum.logStalled ? "evidence log: STALLED, bots get no replies" :
      "evidence log: committing" + (sum.commitErrors ? " (" + sum.commitErrors + " failed commits)" : ""),
      sum.logStalled ? "bad" : sum.commitErrors ? "warn" : "ok");
    badge("registry-state", "registry: " + sum.registry +
      (sum.registry === "up" ? ", lag " + formatCount(sum.registryLag) + " entries" +
        (sum.registryBehindSeconds > 0 ? ", " + formatCount(sum.registryBehindSeconds) + " s behind" : "") : ""),
      sum.registry === "stopped" ? "bad" : sum.registryBehindSeconds >= 60 ? "warn" : "ok");
    badge("remediation-state", "remediation: " + sum.remediation +
      (sum.commandsSent ? " (" + formatCount(sum.commandsSent) + ")" : ""),
      sum.commandsFailed ? "warn" : "ok");
    badge("capture-state", "message bodies: " + (sum.capture === "off" ? "not kept" :
      sum.capture === "on" ? "kept (" + formatCount(sum.bodiesKept) + " new)" :
      "capture stopped (budget or disk reserve)"), sum.capture === "stopped" ? "warn" : "ok");
    const cards = [
      ["bot connections open", formatCount(sum.counters.connectionsOpen)],
      ["new connections / s", formatCount(rates.accepted)],
      ["replies / s", formatCount(rates.replies)],
      ["log entries", formatCount(sum.counters.logEntries)],
      ["group commits / s", formatCount(rates.commits)],
      ["durable p50 / p99", formatCount(sum.latency.p50) + " / " + formatCount(sum.latency.p99) + " µs"],
      ["listener bans now", formatCount(sum.bansNow)],
    ];
    document.getElementById("cards").replaceChildren(...cards.map(([label, value]) => {
      const c = el("div", undefined, "card");
      c.appendChild(el("div", label, "label"));
      c.appendChild(el("div", value, "value"));
      return c;
    }));
    fillTable("contacts", Object.keys(sum.contacts).map((k) =>
      [k, formatCount(sum.contacts[k]), formatCount(contactRates[k] || 0)]));
    fillTable("decisions", Object.keys(sum.decisions).map((k) => [k, formatCount(sum.decisions[k])]));
    fillTable("defences", [
      ["refused by a limit", "rejected"], ["held until their reset", "held"],
      ["closed as bad peers", "badPeers"], ["timed out", "timeouts"], ["listener bans made", "bansMade"],
    ].map(([label, k]) => [label, formatCount(sum.counters[k]), formatCount(rates[k])]));
    document.getElementById("updated").textContent = "last update " + new Date().toLocaleTimeString();
  };

  const poll = async () => {
    try {
      const response = await fetch("/metrics.json", { cache: "no-store" });
      const now = Date.now() / 1000;
      const sum = summarize(await response.json(), now);
      const seconds = previous ? now - previous.time : 0;
      render(sum, perSecond(previous && previous.sum.counters, sum.counters, seconds),
        perSecond(previous && previous.sum.contacts, sum.contacts, seconds));
      previous = { time: now, sum: sum };
    } catch (e) {
      document.getElementById("uptime").textContent = "no answer from the server (" + e.message + ")";
    }
  };
  poll();
  setInterval(poll, 2000);

  // The map and per-day curves of all countries (/countries.json, data/web/charts.js), every
  // 10 s: the server computes them at most that often.
  const world = async () => {
    try {
      const response = await fetch("/countries.json", { cache: "no-store" });
      const data = await response.json();
      const section = document.getElementById("world");
      section.hidden = !data.registry;
      if (!data.registry || !window.sinkdCharts) return;
      const n = await window.sinkdCharts.map(document.getElementById("map"), data.countries, "bots");
      const bots = Object.values(data.countries).reduce((a, b) => a + b, 0);
      document.getElementById("map-legend").textContent =
        `${formatCount(bots)} bots in ${n} countries (country of each bot's latest contact; darker is more).`;
      window.sinkdCharts.curves(document.getElementById("curves"), data.days, [
        { key: "ips", label: "unique addresses" },
        { key: "bots", label: "bots" },
        { key: "disinfected", label: "disinfected" },
      ]);
      document.body.dataset.world = "1";
    } catch (e) {
      document.getElementById("map-legend").textContent = "map: " + e.message;
    }
  };
  world();
  setInterval(world, 10000);
}
