// charts.js -- the world map and per-day curves shared by the authorities' portal and the
// operator's dashboard: plain DOM and SVG, no library, nothing fetched but /worldmap.svg from
// the same server (both pages run under a CSP that allows only their own origin).
'use strict';
(function () {
  const SVG = 'http://www.w3.org/2000/svg';

  function el(name, attrs, text) {
    const e = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Bucket 1..5 on a log scale of count against the largest count (0: none).
  function bucket(n, max) {
    if (!(n > 0) || !(max > 0)) return 0;
    if (max <= 1) return 5;
    return Math.max(1, Math.min(5, 1 + Math.floor((4 * Math.log(n)) / Math.log(max) + 1e-9)));
  }

  // Colours the countries of the map by counts ({"NG": 16, ...}); resolves to the number of
  // countries coloured. `unit` names what is counted in each country's tooltip.
  async function map(container, counts, unit) {
    const res = await fetch('/worldmap.svg', { credentials: 'same-origin' });
    if (!res.ok) throw new Error('map: ' + res.status);
    const doc = new DOMParser().parseFromString(await res.text(), 'image/svg+xml');
    const svg = document.importNode(doc.documentElement, true);
    const max = Math.max(0, ...Object.values(counts));
    let coloured = 0;
    for (const path of svg.querySelectorAll('path.country')) {
      const cc = path.getAttribute('data-cc');
      const n = cc ? counts[cc] || 0 : 0;
      const q = bucket(n, max);
      if (q > 0) {
        path.classList.add('q' + q, 'has-victims');
        coloured++;
      }
      const title = path.querySelector('title');
      if (title && n > 0) title.textContent += ': ' + n + ' ' + unit;
    }
    container.replaceChildren(svg);
    return coloured;
  }

  // Per-day curves: days [{day: "YYYY-MM-DD", <series>: n}], series [{key, label}].
  function curves(container, days, series) {
    const W = 900, H = 220, L = 48, R = 12, T = 24, B = 28;
    const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
    const max = Math.max(1, ...days.flatMap((d) => series.map((s) => d[s.key] || 0)));
    const x = (i) => L + (days.length <= 1 ? 0 : (i * (W - L - R)) / (days.length - 1));
    const y = (v) => H - B - (v * (H - T - B)) / max;
    svg.append(el('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
    svg.append(el('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
    svg.append(el('text', { x: 4, y: T + 4 }, String(max)));
    svg.append(el('text', { x: 4, y: H - B }, '0'));
    if (days.length) {
      svg.append(el('text', { x: L, y: H - 8 }, days[0].day));
      svg.append(el('text', { x: W - R - 70, y: H - 8 }, days[days.length - 1].day));
    }
    series.forEach((s, k) => {
      const pts = days.map((d, i) => `${x(i).toFixed(1)},${y(d[s.key] || 0).toFixed(1)}`);
      svg.append(el('polyline', { class: s.key, points: pts.join(' ') }));
      const lx = L + 10 + k * 170;
      svg.append(el('rect', { class: 'key ' + s.key, x: lx, y: 6, width: 12, height: 8 }));
      svg.append(el('text', { x: lx + 16, y: 14 }, s.label));
    });
    container.replaceChildren(svg);
    return svg;
  }

  window.sinkdCharts = { map, curves, bucket };
})();
