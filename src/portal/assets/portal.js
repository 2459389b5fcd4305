// portal.js -- the authorities' page: log in (token or client certificate, with a
// justification), then the authority's figures, map, per-day curves, victims, downloads,
// disinfection requests and their status. Everything comes from /api/v1/ on this server; text
// is put into the page with textContent only, never as markup.
'use strict';

const state = { session: null, stats: null };
const $ = (id) => document.getElementById(id);

async function api(path, options) {
  const opts = Object.assign({ credentials: 'same-origin', headers: {} }, options || {});
  if (state.session && opts.method === 'POST') opts.headers['X-CSRF-Token'] = state.session.csrf;
  const res = await fetch(path, opts);
  return res;
}

async function errorText(res) {
  try {
    return (await res.json()).error || res.statusText;
  } catch (e) {
    return res.statusText;
  }
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function card(label, value) {
  const d = document.createElement('div');
  d.className = 'card';
  const l = document.createElement('div');
  l.className = 'label';
  l.textContent = label;
  const v = document.createElement('div');
  v.className = 'value';
  v.textContent = String(value);
  d.append(l, v);
  return d;
}

function showLogin(message) {
  state.session = null;
  $('app').hidden = true;
  $('logout').hidden = true;
  $('who').textContent = '';
  $('login').hidden = false;
  $('login-error').textContent = message || '';
}

async function login(ev) {
  ev.preventDefault();
  $('login-error').textContent = '';
  const c = await fetch('/api/v1/csrf', { credentials: 'same-origin' });
  if (!c.ok) return showLogin('cannot start a login: ' + (await errorText(c)));
  const { csrf } = await c.json();
  const res = await fetch('/api/v1/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
    body: JSON.stringify({ token: $('token').value, justification: $('justification').value }),
  });
  $('token').value = '';
  if (!res.ok) return showLogin(await errorText(res));
  state.session = await res.json();
  await showApp();
}

async function logout() {
  await api('/api/v1/logout', { method: 'POST' });
  showLogin('logged out');
}

function scopeText(s) {
  const parts = [];
  if (s.countries.length) parts.push('countries ' + s.countries.join(', '));
  if (s.asns.length) parts.push('AS ' + s.asns.join(', '));
  if (s.networks.length) parts.push('networks ' + s.networks.join(', '));
  return `Your scope: ${parts.join('; ')}; rows last seen within ${s.max_days_old} days. ` +
    `Reads are recorded with the justification "${s.justification}".`;
}

async function loadStats() {
  const res = await api('/api/v1/stats');
  if (!res.ok) throw new Error(await errorText(res));
  const s = (state.stats = await res.json());
  const r = s.remediation;
  $('cards').replaceChildren(
    card('bots', s.totals.bots),
    card('addresses', s.totals.ips),
    card('contacts', s.totals.contacts),
    card('countries', s.countries.length),
    card('commanded', r.commanded),
    card('disinfected (silent since)', r.silent),
  );
  const counts = {};
  for (const c of s.countries) counts[c.cc] = c.bots;
  const n = await window.sinkdCharts.map($('map'), counts, 'bots');
  $('map-legend').textContent = `${n} countr${n === 1 ? 'y' : 'ies'} with victims of yours; darker is more bots.`;
  window.sinkdCharts.curves($('curves'), s.days, [
    { key: 'ips', label: 'unique addresses' },
    { key: 'bots', label: 'bots' },
    { key: 'disinfected', label: 'disinfected' },
  ]);
}

async function loadVictims() {
  const res = await api('/api/v1/victims?format=n6');
  if (!res.ok) throw new Error(await errorText(res));
  const events = await res.json();
  const rows = events.map((e) => {
    const tr = document.createElement('tr');
    const a = e.address[0] || {};
    tr.append(cell(a.ip || ''), cell(String(e.sport || ''), 'num'), cell(a.cc || ''),
      cell(a.asn ? 'AS' + a.asn : '', 'num'), cell((e.time || '').replace('T', ' ').replace('Z', '')));
    return tr;
  });
  $('victims').tBodies[0].replaceChildren(...rows);
  $('victims-count').textContent = `(${events.length})`;
}

function effect(req) {
  const e = (state.stats ? state.stats.requests : []).find((x) => x.id === req.id);
  if (!e) return '';
  return `${e.commanded} commanded, ${e.silent} silent since, ${e.seen_after} seen again`;
}

async function loadRequests() {
  const res = await api('/api/v1/requests');
  if (!res.ok) throw new Error(await errorText(res));
  const list = await res.json();
  const rows = list.map((r) => {
    const tr = document.createElement('tr');
    tr.dataset.id = String(r.id);
    const scope = [...r.countries, ...r.networks].join(', ');
    const decision = r.status === 'approved' ? `as ${r.authorisation} by ${r.decided_by}`
      : r.status === 'rejected' ? `${r.reason} (${r.decided_by})` : '';
    tr.append(cell(String(r.id), 'num'), cell(r.status, 'status-' + r.status), cell(scope),
      cell(`${r.not_before.slice(0, 10)} .. ${r.not_after.slice(0, 10)}`), cell(decision), cell(effect(r)));
    return tr;
  });
  $('requests').tBodies[0].replaceChildren(...rows);
}

function setupRequestForm(s) {
  $('request-section').hidden = !s.may_request;
  $('request-networks').parentElement.hidden = s.networks.length === 0;
  const fs = $('request-countries');
  fs.hidden = s.countries.length === 0;
  fs.replaceChildren(fs.firstElementChild);
  for (const cc of s.countries) {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.value = cc;
    box.name = 'countries';
    label.append(box, ' ' + cc);
    fs.append(label);
  }
  const today = new Date();
  $('request-from').value = today.toISOString().slice(0, 10);
  $('request-until').value = new Date(today.getTime() + 60 * 86400000).toISOString().slice(0, 10);
}

async function sendRequest(ev) {
  ev.preventDefault();
  $('request-error').textContent = '';
  const body = new URLSearchParams();
  const cc = [...document.querySelectorAll('#request-countries input:checked')].map((b) => b.value);
  const nets = $('request-networks').value.split(/[\s,]+/).filter(Boolean);
  if (cc.length) body.set('countries', cc.join(','));
  if (nets.length) body.set('networks', nets.join(','));
  body.set('legal_reference', $('request-legal').value);
  body.set('contact', $('request-contact').value);
  body.set('not_before', $('request-from').value);
  body.set('not_after', $('request-until').value);
  const res = await api('/api/v1/requests', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: body.toString(),
  });
  if (!res.ok) {
    $('request-error').textContent = await errorText(res);
    return;
  }
  $('request-form').reset();
  setupRequestForm(state.session);
  $('request-error').textContent = 'request sent';
  await loadRequests();
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function download(format) {
  $('download-error').textContent = '';
  const res = await api('/api/v1/victims?format=' + encodeURIComponent(format));
  if (!res.ok) {
    $('download-error').textContent = await errorText(res);
    return;
  }
  const ext = format === 'csv' ? 'csv' : format === 'intelmq' ? 'jsonl' : 'json';
  saveBlob(await res.blob(), `sinkd-${state.session.authority}-victims.${ext}`);
}

async function bundle(ev) {
  ev.preventDefault();
  $('download-error').textContent = '';
  const ip = $('bundle-ip').value.trim();
  const res = await api('/api/v1/bundle?ip=' + encodeURIComponent(ip));
  if (!res.ok) {
    $('download-error').textContent = await errorText(res);
    return;
  }
  saveBlob(await res.blob(), `sinkd-bundle-${ip.replace(/[^0-9a-fA-F.]/g, '_')}.tar`);
}

async function showApp() {
  const s = state.session;
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  $('who').textContent = `${s.name} (${s.authority})`;
  $('scope').textContent = scopeText(s);
  setupRequestForm(s);
  try {
    if (s.may_read) {
      await loadStats();
      await loadVictims();
    }
    await loadRequests();
    document.body.dataset.ready = '1';
  } catch (e) {
    $('download-error').textContent = String(e.message || e);
  }
}

async function start() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('request-form').addEventListener('submit', sendRequest);
  $('bundle-form').addEventListener('submit', bundle);
  for (const b of document.querySelectorAll('button.download')) {
    b.addEventListener('click', () => download(b.dataset.format));
  }
  const res = await fetch('/api/v1/session', { credentials: 'same-origin' });
  const s = res.ok ? await res.json() : null;
  if (s && s.authority) {
    state.session = s;
    await showApp();
  } else {
    showLogin(res.ok ? '' : await errorText(res));
  }
}

document.addEventListener('DOMContentLoaded', start);
