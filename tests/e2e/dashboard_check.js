// dashboard_check.js -- runs the dashboard's own logic (the dashboard.js a live server sent)
// under Node on that server's /metrics.json, and checks what the page would show against the
// evidence log's summary (`sinkd contacts --summary`).
// Usage: node dashboard_check.js DASHBOARD_JS METRICS_JSON SUMMARY_JSON
"use strict";
const fs = require("fs");
const path = require("path");
const [jsFile, metricsFile, summaryFile] = process.argv.slice(2);
const dash = require(path.resolve(jsFile));
const metrics = JSON.parse(fs.readFileSync(metricsFile, "utf8"));
const summary = JSON.parse(fs.readFileSync(summaryFile, "utf8"));
let failed = 0;
function check(cond, what) {
  if (!cond) {
    console.error("check failed: " + what);
    failed++;
  }
}

const now = Date.now() / 1000;
const s = dash.summarize(metrics, now);
check(s.version === "0.1.0" && s.family === "plugx", "build " + s.version + " " + s.family);
check(s.uptimeSeconds >= 0 && s.uptimeSeconds < 600, "uptime " + s.uptimeSeconds);
check(s.logStalled === false && s.commitErrors === 0, "log healthy");
check(s.registry === "up", "registry " + s.registry);
check(s.remediation === "no policy" && s.commandsSent === 0, "remediation " + s.remediation);
check(s.capture === "off", "capture " + s.capture);
for (const type of ["machine-info", "other", "undecoded"]) {
  const want = summary.by_type[type] || 0;
  check(s.contacts[type] === want, type + ": page " + s.contacts[type] + ", log " + want);
}
// Polls: the page counts each as it came (hello or heartbeat); the log has the first of each
// presence as a contact and the rest in heartbeats records, or still pending in the roll-up.
const pending = (metrics.sinkd_heartbeats_pending || { samples: [{ value: 0 }] }).samples[0].value;
const polls = (s.contacts.hello || 0) + (s.contacts.heartbeat || 0);
const logged = (summary.by_type.hello || 0) + (summary.by_type.heartbeat || 0);
check(polls === logged + pending, "polls: page " + polls + ", log " + logged + " + pending " + pending);
check(s.counters.replies >= summary.contacts - summary.by_type.other, "replies " + s.counters.replies);
check(s.counters.logEntries >= summary.records, "log entries " + s.counters.logEntries);
check(s.latency.p99 >= s.latency.p50 && s.latency.max >= s.latency.p99 && s.latency.p50 > 0,
  "latency " + JSON.stringify(s.latency));

// Rates from two snapshots 2 s apart, and a restart (counters lower than before).
const prev = Object.assign({}, s.counters, { replies: s.counters.replies - 300, accepted: 0 });
const r = dash.perSecond(prev, s.counters, 2);
check(r.replies === 150, "replies/s " + r.replies);
check(r.accepted === s.counters.accepted / 2, "accepted/s after a counter restart " + r.accepted);
check(r.logEntries === 0, "unchanged counter " + r.logEntries);
check(Object.values(dash.perSecond(null, s.counters, 0)).every((v) => v === 0), "first poll");
// A server with the registry off, a stalled log and a command sent.
const other = JSON.parse(JSON.stringify(metrics));
delete other.sinkd_registry_up;
other.sinkd_log_stalled.samples[0].value = 1;
other.sinkd_commands_sent_total.samples[0].value = 3;
other.sinkd_raw_full = { type: "gauge", help: "", samples: [{ labels: {}, value: 1 }] };
const o = dash.summarize(other, now);
check(o.capture === "stopped", "capture " + o.capture);
check(o.registry === "off" && o.logStalled === true && o.remediation === "commands sent", "states " + JSON.stringify([o.registry, o.logStalled, o.remediation]));
check(dash.formatDuration(90061) === "1 d 1 h 1 min", "duration " + dash.formatDuration(90061));
if (failed) process.exit(1);
console.log("dashboard_check: OK");
