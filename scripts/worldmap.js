#!/usr/bin/env node
// worldmap.js -- makes data/web/worldmap.svg, the world map the portal and the operator's
// dashboard colour by victims per country, from Natural Earth's 1:110m countries (public domain)
// as TopoJSON in the npm package world-atlas 2.0.2 (ISC), and Debian's iso-codes table for the
// alpha-2 codes. No dependencies; the SVG is committed, this script is how to make it again:
//   npm pack world-atlas@2.0.2   # sha256 032e7765f2ce00edaeafec23ff22bc3b77e42987c257da944cc585b452c05b97
//   tar xzf world-atlas-2.0.2.tgz && node scripts/worldmap.js package/countries-110m.json \
//       /usr/share/iso-codes/json/iso_3166-1.json > data/web/worldmap.svg
'use strict';
const fs = require('fs');
const [topoPath, isoPath] = process.argv.slice(2);
if (!topoPath || !isoPath) {
  console.error('usage: worldmap.js countries-110m.json iso_3166-1.json');
  process.exit(2);
}
const topo = JSON.parse(fs.readFileSync(topoPath, 'utf8'));
const iso = JSON.parse(fs.readFileSync(isoPath, 'utf8'))['3166-1'];
const alpha2 = new Map(iso.map((c) => [c.numeric, c.alpha_2]));
const byName = new Map([['Kosovo', 'XK']]); // no ISO numeric code; the policy module knows XK

const [sx, sy] = topo.transform.scale;
const [tx, ty] = topo.transform.translate;
// Each arc decoded once: quantized, delta-encoded positions (TopoJSON spec 2.1.4).
const arcs = topo.arcs.map((arc) => {
  let x = 0;
  let y = 0;
  return arc.map(([dx, dy]) => {
    x += dx;
    y += dy;
    return [x * sx + tx, y * sy + ty];
  });
});
// Equirectangular: 960 x 480 for 360 x 180 degrees.
const px = ([lon, lat]) => [((lon + 180) * 960) / 360, ((90 - lat) * 480) / 180];
function ring(indices) {
  const pts = [];
  for (const i of indices) {
    const a = i >= 0 ? arcs[i] : arcs[~i].slice().reverse();
    pts.push(...(pts.length ? a.slice(1) : a));
  }
  let d = '';
  let last = '';
  let prevLon = null;
  let shift = 0;
  pts.forEach((pt, k) => {
    // A ring that crosses the antimeridian (Russia, Fiji) would jump across the whole map and
    // draw a wedge over every country in between: unwrap it instead, so it runs on past the
    // edge, where the viewBox cuts it.
    if (prevLon !== null && pt[0] - prevLon < -180) shift += 360;
    if (prevLon !== null && pt[0] - prevLon > 180) shift -= 360;
    prevLon = pt[0];
    const [x, y] = px([pt[0] + shift, pt[1]]);
    const p = `${x.toFixed(1)},${y.toFixed(1)}`;
    if (p !== last) {
      d += (k === 0 ? 'M' : 'L') + p;
      last = p;
    }
  });
  return d + 'Z';
}
const out = [];
for (const g of topo.objects.countries.geometries) {
  const polys = g.type === 'Polygon' ? [g.arcs] : g.type === 'MultiPolygon' ? g.arcs : [];
  const d = polys.map((rings) => rings.map(ring).join('')).join('');
  const cc = alpha2.get(g.id) || byName.get(g.properties.name) || '';
  const name = g.properties.name.replace(/[<>&"]/g, '');
  out.push(`<path class="country"${cc ? ` id="cc-${cc}" data-cc="${cc}"` : ''} d="${d}"><title>${name}</title></path>`);
}
process.stdout.write(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 960 480" class="worldmap">\n' +
    '<!-- Natural Earth 1:110m Admin 0 countries (public domain), via world-atlas 2.0.2 (ISC); ' +
    'made by scripts/worldmap.js -->\n' +
    out.join('\n') +
    '\n</svg>\n',
);
