// How long `signbridge module-path` and `signbridge --help` take as whole processes, next to
// `node -e 0` (the floor: Node's own start-up). Every recipe runs `$(signbridge module-path)`, so it
// must not load the daemon, the backends or the logger (src/cli/index.ts imports them lazily).
// Run by `npm run bench`, or alone: node bench/cli-startup.mjs [runs]
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'lib', 'cli', 'index.js');

function timeMs(args, runs) {
  const ms = [];
  for (let i = 0; i < runs + 2; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
    const t = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${r.stderr}`);
    if (i >= 2) ms.push(t); // two warm-up runs (page cache)
  }
  ms.sort((a, b) => a - b);
  return { p50: ms[Math.floor(ms.length / 2)], min: ms[0] };
}

export function cliStartupRows(runs = 20) {
  return [
    { what: 'node -e 0 (the floor)', ...timeMs(['-e', '0'], runs), target: '' },
    { what: 'signbridge module-path', ...timeMs([cli, 'module-path'], runs), target: '≤ 100 ms' },
    { what: 'signbridge --help', ...timeMs([cli, '--help'], runs), target: '≤ 150 ms' },
  ];
}

export function printCliStartup(rows) {
  console.log('\nCLI start-up, whole process, ms');
  console.log(`${'command'.padEnd(26)} ${'p50'.padStart(7)} ${'min'.padStart(7)}  target`);
  for (const r of rows) console.log(`${r.what.padEnd(26)} ${r.p50.toFixed(1).padStart(7)} ${r.min.toFixed(1).padStart(7)}  ${r.target}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) printCliStartup(cliStartupRows(Number(process.argv[2] ?? 20)));
