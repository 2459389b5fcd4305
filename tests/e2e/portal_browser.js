// portal_browser.js -- the authorities' page in headless Chromium (tests/e2e/cdp.js): two
// authorities log in with their tokens, each sees only its own victims in the table, on the map
// and in the CSV it downloads; one sends a disinfection request, the operator approves it with
// the real CLI, and the authority sees the status after a reload. Screenshots are kept in OUT.
// usage: node portal_browser.js CONFIG.json   (written by portal_browser_test.sh)
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { launch } = require('./cdp');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const failures = [];
function check(ok, what) {
  if (!ok) failures.push(what);
}

function ipsOfCsv(text) {
  const lines = text.trim().split('\n').slice(1);
  return lines.map((l) => l.split(',')[2].replace(/"/g, '')).sort();
}

async function waitFile(dir, suffix, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const f = fs.readdirSync(dir).find((n) => n.endsWith(suffix));
    if (f) return path.join(dir, f);
    if (Date.now() > end) throw new Error(`no ${suffix} download in ${dir}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function session(who) {
  const a = cfg.authorities[who];
  const browser = launch(path.join(cfg.out, 'profile-' + who), [
    '--ignore-certificate-errors-spki-list=' + cfg.spki,
  ]);
  try {
    const page = await browser.newPage();
    const downloads = path.join(cfg.out, 'downloads-' + who);
    fs.mkdirSync(downloads, { recursive: true });
    await browser.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    await page.goto(cfg.base + '/');
    await page.waitFor("!document.getElementById('login').hidden", 15000, 'the login form');
    await page.eval(`(() => {
      document.getElementById('token').value = ${JSON.stringify(a.token)};
      document.getElementById('justification').value = 'browser test, case ${who}';
      document.querySelector('#login-form button').click();
      return true; })()`);
    await page.waitFor("document.body.dataset.ready === '1'", 20000, who + ' page ready');
    // The table and the map hold its own victims, and nobody else's.
    const shown = (await page.eval(
      "[...document.querySelectorAll('#victims tbody tr')].map(tr => tr.cells[0].textContent)",
    )).sort();
    check(JSON.stringify(shown) === JSON.stringify(a.ips), `${who}: table shows ${shown.length} addresses, want ${a.ips.length}`);
    const countries = await page.eval(
      "[...document.querySelectorAll('#victims tbody tr')].map(tr => tr.cells[2].textContent)",
    );
    check(countries.every((c) => c === a.cc), `${who}: table holds other countries: ${[...new Set(countries)]}`);
    const coloured = await page.eval(
      "[...document.querySelectorAll('#map path.has-victims')].map(p => p.dataset.cc)",
    );
    check(JSON.stringify(coloured) === JSON.stringify([a.cc]), `${who}: map colours ${coloured}`);
    const lines = await page.eval("document.querySelectorAll('#curves polyline').length");
    check(lines === 3, `${who}: ${lines} curves`);
    const cards = await page.eval("document.getElementById('cards').textContent");
    check(cards.includes('bots' + a.ips.length), `${who}: figures '${cards}'`);
    // The download is its own victims too.
    await page.eval("document.querySelector('button.download[data-format=csv]').click(), true");
    const file = await waitFile(downloads, '.csv', 15000);
    await new Promise((r) => setTimeout(r, 300)); // the file is renamed once complete
    const got = ipsOfCsv(fs.readFileSync(await waitFile(downloads, '.csv', 5000), 'utf8'));
    check(JSON.stringify(got) === JSON.stringify(a.ips), `${who}: downloaded CSV has ${got.length} rows (${file})`);
    await page.screenshot(path.join(cfg.out, `portal-${who}.png`));

    const canRequest = await page.eval("!document.getElementById('request-section').hidden");
    check(canRequest === a.may_request, `${who}: request form shown: ${canRequest}`);
    if (a.may_request) {
      await page.eval(`(() => {
        document.querySelector('#request-countries input[value=${a.cc}]').checked = true;
        document.getElementById('request-legal').value = 'Court order 7/2026 (browser test)';
        document.getElementById('request-contact').value = 'cert@example.org';
        document.querySelector('#request-form button').click();
        return true; })()`);
      await page.waitFor(
        "[...document.querySelectorAll('#requests tbody tr')].some(tr => tr.cells[1].textContent === 'pending')",
        15000, 'a pending request');
      const id = await page.eval("document.querySelector('#requests tbody tr').dataset.id");
      // The operator approves it with the real CLI.
      execFileSync(cfg.sinkd, ['portal', 'approve', id, '--state', cfg.state, '--policy', cfg.policy],
        { stdio: 'pipe' });
      await page.reload();
      await page.waitFor("document.body.dataset.ready === '1'", 20000, 'page ready after reload');
      const status = await page.eval(
        `document.querySelector('#requests tbody tr[data-id="${id}"]').cells[1].textContent`);
      check(status === 'approved', `${who}: request ${id} shows '${status}' after approval`);
      await page.screenshot(path.join(cfg.out, `portal-${who}-approved.png`));
    }
    check(browser.problems.length === 0, `${who}: page problems: ${browser.problems.join(' | ')}`);
  } finally {
    await browser.close();
  }
}

(async () => {
  for (const who of Object.keys(cfg.authorities)) {
    await session(who);
  }
  if (failures.length) {
    console.error('FAIL: ' + failures.join('\n      '));
    process.exit(1);
  }
  console.log('portal_browser: OK');
})().catch((e) => {
  console.error('FAIL: ' + (e.stack || e));
  process.exit(1);
});
