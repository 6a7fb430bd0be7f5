// node bench/chart.mjs <bench.json> <out.svg> — the chart docs/performance.md shows, drawn from the
// JSON `npm run bench -- --json` writes: per key, the p50 overhead over SoftHSMv2 directly of each
// path (p11-kit, signbridge with the audit log on tmpfs and on disk) and the limit of each target
// (half of p11-kit's; on disk, plus the disk's own sync). Plain SVG, no dependencies.
import { readFileSync, writeFileSync } from 'node:fs';

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node bench/chart.mjs <bench.json> <out.svg>');
  process.exit(2);
}
const res = JSON.parse(readFileSync(input, 'utf8'));
const PATHS = [
  ['p11kit', 'p11-kit forwarding', '#9e9e9e'],
  ['sb_tmpfs', 'signbridge, audit on tmpfs', '#1f77b4'],
  ['sb_js', 'signbridge, tmpfs, JavaScript path only', '#aec7e8'],
  ['sb_disk', 'signbridge, audit on disk', '#ff7f0e'],
];
const keys = [...new Set(res.sequential.map((r) => r.key))];
const get = (key, id) => res.sequential.find((r) => r.key === key && r.id === id);

const W = 760;
const barH = 22;
const groupGap = 30;
const left = 200;
const right = 150;
const top = 70;
const groupH = PATHS.length * barH + groupGap;
const H = top + keys.length * groupH + 50;
const max = Math.max(
  1,
  ...res.sequential.map((r) => r.overhead),
  ...keys.map((k) => (get(k, 'p11kit') ? 0.5 * get(k, 'p11kit').overhead + (res.diskDsyncP50Us ?? 0) : 0)),
);
const x = (v) => left + (Math.max(0, v) / max) * (W - left - right);
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
const out = [];
out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">p50 overhead per signature over SoftHSMv2 directly (µs, lower is better)</text>`);
const m = res.machine ?? {};
out.push(`<text x="${W / 2}" y="42" text-anchor="middle" fill="#555">${esc(`C_SignInit + C_Sign, ${res.count} sequential; ${m.cpu ?? ''}, node ${m.node ?? ''}, load ${m.loadavg_at_start ?? '?'}; one run`)}</text>`);
keys.forEach((key, g) => {
  const y0 = top + g * groupH;
  out.push(`<text x="8" y="${y0 + (PATHS.length * barH) / 2 + 4}" font-weight="bold">${esc(`${key} (direct ${get(key, 'direct').p50_us.toFixed(0)} µs)`)}</text>`);
  PATHS.forEach(([id, label, color], i) => {
    const r = get(key, id);
    if (!r) return;
    const y = y0 + i * barH;
    out.push(`<text x="${left - 6}" y="${y + barH / 2 + 4}" text-anchor="end" fill="#333">${esc(label)}</text>`);
    out.push(`<rect x="${left}" y="${y + 3}" width="${Math.max(1, x(r.overhead) - left).toFixed(1)}" height="${barH - 6}" fill="${color}"/>`);
    out.push(`<text x="${(x(r.overhead) + 4).toFixed(1)}" y="${y + barH / 2 + 4}">${r.overhead.toFixed(0)}</text>`);
  });
  const p = get(key, 'p11kit');
  if (p) {
    const lim = 0.5 * p.overhead;
    const marks = [[lim, 'target: ½ p11-kit', y0 + 2 * barH - 2, y0 + PATHS.length * barH]];
    if (res.diskDsyncP50Us && key.startsWith('EC')) marks.push([lim + res.diskDsyncP50Us, '+ disk sync p50', y0 + 2 * barH, y0 + 3 * barH]);
    for (const [v, label, ya, yb] of marks) {
      out.push(`<line x1="${x(v).toFixed(1)}" x2="${x(v).toFixed(1)}" y1="${y0}" y2="${yb}" stroke="#d62728" stroke-dasharray="4 3"/>`);
      out.push(`<text x="${(x(v) + 3).toFixed(1)}" y="${ya - 8}" fill="#d62728" font-size="10">${esc(label)}</text>`);
    }
  }
});
out.push(`<line x1="${left}" x2="${left}" y1="${top - 5}" y2="${H - 40}" stroke="#333"/>`);
out.push('</svg>');
writeFileSync(output, out.join('\n') + '\n');
console.log(`wrote ${output}`);
