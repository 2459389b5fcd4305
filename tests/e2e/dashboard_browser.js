// dashboard_browser.js -- the operator's dashboard in headless Chromium (tests/e2e/cdp.js): the
// page runs under its CSP without an error, its world map colours exactly the countries the
// swarm's bots came from, each country's tooltip gives its count, and the per-day curves are
// drawn. usage: node dashboard_browser.js URL SWARM.json OUT_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const { launch } = require('./cdp');

const [url, swarmPath, out] = process.argv.slice(2);
const swarm = JSON.parse(fs.readFileSync(swarmPath, 'utf8'));
const want = Object.entries(swarm.per_country).filter(([, n]) => n > 0);

(async () => {
  const browser = launch(path.join(out, 'profile-dashboard'));
  const failures = [];
  try {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitFor("document.body.dataset.world === '1'", 20000, 'the map');
    const coloured = (await page.eval(
      "[...document.querySelectorAll('#map path.has-victims')].map(p => p.dataset.cc)",
    )).sort();
    const expect = want.map(([cc]) => cc).filter((cc) => cc !== 'ZZ').sort();
    // Countries too small for the 1:110m map (no path) cannot be coloured.
    const onMap = await page.eval(
      `${JSON.stringify(expect)}.filter(cc => document.getElementById('cc-' + cc))`);
    if (JSON.stringify(coloured) !== JSON.stringify(onMap.sort())) {
      failures.push(`map colours ${coloured.join(',')}, want ${onMap.join(',')}`);
    }
    for (const [cc, n] of want) {
      const title = await page.eval(
        `(document.querySelector('#cc-${cc} title') || {}).textContent || ''`);
      if (onMap.includes(cc) && !title.endsWith(`: ${n} bots`)) {
        failures.push(`${cc}: tooltip '${title}', want ${n} bots`);
      }
    }
    const lines = await page.eval("document.querySelectorAll('#curves polyline').length");
    if (lines !== 3) failures.push(`${lines} curves`);
    const cards = await page.eval("document.getElementById('cards').children.length");
    if (cards === 0) failures.push('the figures are missing');
    await page.screenshot(path.join(out, 'dashboard.png'));
    if (browser.problems.length) failures.push('page problems: ' + browser.problems.join(' | '));
  } finally {
    await browser.close();
  }
  if (failures.length) {
    console.error('FAIL: ' + failures.join('\n      '));
    process.exit(1);
  }
  console.log('dashboard_browser: OK');
})().catch((e) => {
  console.error('FAIL: ' + (e.stack || e));
  process.exit(1);
});
