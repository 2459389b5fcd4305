// cdp.js -- a small Chrome DevTools Protocol client for the browser tests: Debian's headless
// Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-terminated JSON), so no
// npm package, WebSocket or open port is needed. Every wait is bounded.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

class Browser {
  constructor(proc) {
    this.proc = proc;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    this.problems = []; // exceptions, CSP violations, console errors of any page
    let buf = Buffer.alloc(0);
    proc.stdio[4].on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let nul;
      while ((nul = buf.indexOf(0)) >= 0) {
        const msg = JSON.parse(buf.subarray(0, nul).toString('utf8'));
        buf = buf.subarray(nul + 1);
        this.dispatch(msg);
      }
    });
  }

  dispatch(msg) {
    if (msg.id !== undefined && this.pending.has(msg.id)) {
      const { resolve, reject, method } = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
      else resolve(msg.result);
      return;
    }
    if (msg.method === 'Runtime.exceptionThrown') {
      this.problems.push('exception: ' + JSON.stringify(msg.params.exceptionDetails).slice(0, 400));
    } else if (msg.method === 'Log.entryAdded' && msg.params.entry.level === 'error') {
      this.problems.push('log: ' + msg.params.entry.text);
    } else if (msg.method === 'Runtime.consoleAPICalled' && msg.params.type === 'error') {
      this.problems.push('console: ' + JSON.stringify(msg.params.args).slice(0, 400));
    }
    for (const l of this.listeners) l(msg);
  }

  send(method, params, sessionId) {
    const id = this.nextId++;
    const msg = { id, method, params: params || {} };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer in 30 s`));
      }, 30000);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
        method,
      });
      this.proc.stdio[3].write(JSON.stringify(msg) + '\0');
    });
  }

  async newPage() {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this, sessionId);
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    await page.send('Log.enable');
    return page;
  }

  async close() {
    try {
      await this.send('Browser.close');
    } catch (e) {
      /* already gone */
    }
    await new Promise((resolve) => {
      const t = setTimeout(() => (this.proc.kill('SIGKILL'), resolve()), 5000);
      this.proc.on('exit', () => (clearTimeout(t), resolve()));
    });
  }
}

class Page {
  constructor(browser, sessionId) {
    this.browser = browser;
    this.sessionId = sessionId;
  }

  send(method, params) {
    return this.browser.send(method, params, this.sessionId);
  }

  async goto(url) {
    const loaded = this.waitEvent('Page.loadEventFired', 20000);
    await this.send('Page.navigate', { url });
    await loaded;
  }

  async reload() {
    const loaded = this.waitEvent('Page.loadEventFired', 20000);
    await this.send('Page.reload');
    await loaded;
  }

  waitEvent(method, ms) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${method}: not within ${ms} ms`)), ms);
      const l = (msg) => {
        if (msg.method === method && msg.sessionId === this.sessionId) {
          clearTimeout(t);
          this.browser.listeners = this.browser.listeners.filter((x) => x !== l);
          resolve(msg.params);
        }
      };
      this.browser.listeners.push(l);
    });
  }

  // Evaluates an expression (may be async) in the page and returns its JSON value.
  async eval(expression) {
    const r = await this.send('Runtime.evaluate', {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    if (r.exceptionDetails) {
      throw new Error('eval: ' + JSON.stringify(r.exceptionDetails).slice(0, 400));
    }
    return r.result.value;
  }

  // Polls `expression` until it is truthy (every 100 ms, at most ms).
  async waitFor(expression, ms, what) {
    const end = Date.now() + (ms || 15000);
    for (;;) {
      const v = await this.eval(expression);
      if (v) return v;
      if (Date.now() > end) throw new Error('timed out waiting for ' + (what || expression));
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async screenshot(path) {
    await this.send('Emulation.setDeviceMetricsOverride', {
      width: 1280,
      height: 900,
      deviceScaleFactor: 1,
      mobile: false,
    });
    const { data } = await this.send('Page.captureScreenshot', {
      format: 'png',
      captureBeyondViewport: true,
    });
    fs.writeFileSync(path, Buffer.from(data, 'base64'));
  }
}

// Starts a fresh headless Chromium with its own profile directory.
function launch(userDataDir, extraArgs) {
  fs.mkdirSync(userDataDir, { recursive: true });
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-dev-shm-usage',
    '--user-data-dir=' + userDataDir,
    '--remote-debugging-pipe',
    ...(extraArgs || []),
    'about:blank',
  ];
  const proc = spawn(CHROMIUM, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stdio[2].on('data', (d) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const b = new Browser(proc);
  b.stderr = () => stderr;
  return b;
}

module.exports = { launch };
