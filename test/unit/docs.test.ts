// The docs stay true to the code: (a) README's environment table names every variable the module
// and the daemon/CLI read, (b) docs/protocol.md names every CK_RV the daemon can put in a reply,
// (c) no file in the repo points at notes outside it or at a path of one machine.
// Reads files only; starts no process.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const read = (rel: string): string => readFileSync(join(root, rel), 'utf8');

/** Directories and files .gitignore excludes (its entries are simple: `name/` or `*.ext`). */
function ignoreRules(): { dirs: Set<string>; exts: string[] } {
  const dirs = new Set<string>();
  const exts: string[] = [];
  for (const raw of read('.gitignore').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.endsWith('/')) dirs.add(line.slice(0, -1));
    else if (line.startsWith('*.')) exts.push(line.slice(1));
  }
  return { dirs, exts };
}

/** Every file of the repo (relative paths), without what .gitignore excludes. */
function repoFiles(under = ''): string[] {
  const { dirs, exts } = ignoreRules();
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (e.name === '.git') continue; // a directory, or in a worktree a file naming one
      if (e.isDirectory()) {
        if (!dirs.has(e.name)) walk(rel);
      } else if (e.isFile() && !exts.some((x) => e.name.endsWith(x))) {
        out.push(rel);
      }
    }
  };
  walk(under);
  return out.sort();
}

const matchAll = (text: string, re: RegExp): string[] => [...text.matchAll(re)].map((m) => m[1]!);

// --- (a) environment variables ---------------------------------------------------------------

/** Names read with getenv("…") / secure_getenv("…") in C/C++ source. */
export function nativeEnvReads(text: string): string[] {
  return matchAll(text, /\b(?:secure_)?getenv\(\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*\)/g);
}

/**
 * Names read from an environment object in TypeScript: `process.env.X`, `env.X` / `env?.X`
 * (a ProcessEnv passed around), `env['X']`, and `f(env, 'X', …)` (a helper handed the environment
 * and the name). Only upper-case names: `env.foo` is not an environment variable.
 */
export function tsEnvReads(text: string): string[] {
  return [
    ...matchAll(text, /\benv\??\.([A-Z_][A-Z0-9_]*)\b/g),
    ...matchAll(text, /\benv\[\s*['"`]([A-Z_][A-Z0-9_]*)['"`]\s*\]/g),
    ...matchAll(text, /\(\s*(?:process\.)?env\s*,\s*['"`]([A-Z_][A-Z0-9_]*)['"`]/g),
  ];
}

/** The first-column names of README's "## Environment" table, one per row. */
function readmeEnvRows(): string[][] {
  const readme = read('README.md');
  const start = readme.indexOf('\n## Environment\n');
  expect(start, 'README has a "## Environment" section').toBeGreaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return section
    .split('\n')
    .filter((l) => l.startsWith('|') && !/^\|\s*-/.test(l) && !/^\|\s*variable\s*\|/.test(l))
    .map((l) => matchAll(l.split('|')[1]!, /`([A-Za-z_][A-Za-z0-9_]*)`/g));
}

describe('README "Environment" lists every variable signbridge reads', () => {
  it('the extractors find each form of reading a variable (and nothing else)', () => {
    expect(nativeEnvReads('const char* a = getenv("A_1"); secure_getenv("B"); getenv(name);')).toEqual(['A_1', 'B']);
    expect(
      tsEnvReads("process.env.A; env.B; o.env?.C; env['D']; secret(env, 'E', f); env.lower; process.env[name]; x.envy.F"),
    ).toEqual(['A', 'B', 'C', 'D', 'E']);
  });

  it('one variable per row, no row twice', () => {
    const rows = readmeEnvRows();
    expect(rows.length).toBeGreaterThan(5);
    for (const r of rows) expect(r, `README environment row ${JSON.stringify(r)}: one variable per row`).toHaveLength(1);
    const names = rows.map((r) => r[0]);
    expect(names.filter((n, i) => names.indexOf(n) !== i), 'variables listed twice').toEqual([]);
  });

  it('every getenv in native/ and every env read in src/ has a row', () => {
    const documented = new Set(readmeEnvRows().flat());
    const reads = new Map<string, string[]>(); // name → where
    const note = (name: string, where: string): void => void reads.set(name, [...(reads.get(name) ?? []), where]);
    for (const f of repoFiles('native').filter((p) => /\.(c|cc|cpp|h)$/.test(p))) {
      for (const n of nativeEnvReads(read(f))) note(n, f);
    }
    for (const f of repoFiles('src').filter((p) => p.endsWith('.ts'))) {
      for (const n of tsEnvReads(read(f))) note(n, f);
    }
    expect(reads.has('SIGNBRIDGE_SOCKET'), 'the extractors found the socket variable (module and daemon)').toBe(true);
    const missing = [...reads].filter(([n]) => !documented.has(n)).map(([n, where]) => `${n} (read in ${[...new Set(where)].join(', ')})`);
    expect(missing, 'add these to README "## Environment": variable | read by | meaning | default').toEqual([]);
  });
});

// --- (b) CK_RV values in daemon replies --------------------------------------------------------

const CKR = /\b(CKR_[A-Z0-9_]+)\b/g;

/**
 * The CKR_ names the daemon can put in a reply's `rv`, collected from its sources (src/core/errors.ts,
 * src/ipc, src/daemon, src/backends) at the places a reply rv comes from:
 *  1. the catalogue: `entry(CKR_X, …)` in src/core/errors.ts — the rv a thrown SignbridgeError
 *     carries by default (the server answers SIGN with the error's `ckr`);
 *  2. overrides of it: `{ ckr: CKR_X }`, and `ckr = …` computations (names compared with
 *     ===/!== are inputs, not results, and are left out);
 *  3. rvs set directly: `rv: CKR_X` / `rv = … CKR_X` (LOGIN results, the server's fallback) and
 *     `encodeErrorReply(call, id, CKR_X, …)`;
 *  4. helpers whose first parameter is the rv (`function f(ckr: number, …)`): their call sites'
 *     first argument;
 *  5. pass-through sets (`const …ERRORS = new Set([CKR_…])`): token codes the backend forwards.
 * This over-approximates (the catalogue also holds start-up errors, which never reach a reply) and
 * cannot see a token's code forwarded as a variable (`{ ckr: e.code }`): docs/protocol.md states
 * which token codes pass through.
 */
export function replyRvNames(files: Array<{ path: string; text: string }>): Set<string> {
  const out = new Set<string>();
  const add = (expr: string): void => {
    const cleaned = expr
      .replace(/ckrName\([^)]*\)/g, '') // a log field, not a value
      .replace(/'[^']*'|"[^"]*"|`[^`]*`/g, '')
      .replace(/[!=]==\s*CKR_[A-Z0-9_]+/g, '');
    for (const n of matchAll(cleaned, CKR)) out.add(n);
  };
  for (const { path, text } of files) {
    const code = text.replace(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g, ''); // comments mention codes too
    if (path.endsWith('core/errors.ts')) for (const n of matchAll(code, /\bentry\b[^(;]*\(\s*(CKR_[A-Z0-9_]+)/g)) out.add(n);
    for (const n of matchAll(code, /\bckr\s*:\s*(CKR_[A-Z0-9_]+)/g)) out.add(n);
    for (const e of matchAll(code, /\bckr\s*=\s*([^;]+);/g)) add(e);
    for (const e of matchAll(code, /\brv\s*(?::|=(?!=))\s*([^;,\n}]+)/g)) add(e);
    for (const n of matchAll(code, /encodeErrorReply\([^,]+,[^,]+,\s*(CKR_[A-Z0-9_]+)/g)) out.add(n);
    for (const fn of matchAll(code, /function\s+(\w+)\s*\(\s*ckr\s*:\s*number/g)) {
      for (const n of matchAll(code, new RegExp(`\\b${fn}\\(\\s*(CKR_[A-Z0-9_]+)`, 'g'))) out.add(n);
    }
    for (const e of matchAll(code, /const\s+\w*ERRORS\s*=\s*new Set\(\[([^\]]*)\]/g)) add(e);
  }
  return out;
}

describe('docs/protocol.md names every CK_RV the daemon sends', () => {
  it('the collector reads each place a reply rv comes from (and skips comparisons, logs and comments)', () => {
    const names = replyRvNames([
      { path: 'src/core/errors.ts', text: 'A: entry<{ x: string }>(\n    CKR_A,\n (p) => ``),' },
      {
        path: 'src/x.ts',
        text: [
          '// CKR_COMMENT',
          "sbError('X', {}, { ckr: CKR_B });",
          'const ckr = e.code === CKR_INPUT ? CKR_C : CKR_D;',
          "return { rv: CKR_E, message }; log.warn({ rv: ckrName(CKR_LOGGED) }); rv = e ? e.ckr : CKR_F; if (rv === 0) {}",
          "sock.end(encodeErrorReply('HELLO', m.id, CKR_G, msg));",
          'function refuse(ckr: number, detail: string) {} throw refuse(CKR_H, `no`);',
          'const REQUEST_ERRORS = new Set([CKR_I, CKR_J]);',
        ].join('\n'),
      },
    ]);
    expect([...names].sort()).toEqual(['CKR_A', 'CKR_B', 'CKR_C', 'CKR_D', 'CKR_E', 'CKR_F', 'CKR_G', 'CKR_H', 'CKR_I', 'CKR_J']);
  });

  it('every collected name appears in docs/protocol.md', () => {
    const sources = ['src/core', 'src/ipc', 'src/daemon', 'src/backends']
      .flatMap((d) => repoFiles(d))
      .filter((p) => p.endsWith('.ts'))
      .filter((p) => !p.startsWith('src/core/') || p === 'src/core/errors.ts')
      .map((p) => ({ path: p, text: read(p) }));
    const names = replyRvNames(sources);
    expect(names.size, 'the collector found the daemon\'s reply codes').toBeGreaterThan(5);
    const protocol = read('docs/protocol.md');
    const missing = [...names].filter((n) => !new RegExp(`\\b${n}\\b`).test(protocol)).sort();
    expect(missing, 'CK_RVs the daemon can send that docs/protocol.md does not name').toEqual([]);
  });
});

// --- (c) the repo stands alone ------------------------------------------------------------------

// Built from parts so that this file does not match itself.
const FORBIDDEN: Array<[string, RegExp]> = [
  ['a private notes folder', new RegExp(['\\.\\./', 'shared\\b'].join(''))],
  ['private notes', new RegExp(`\\b(${['CONSUMERS', 'STM-API', 'PERFORMANCE', 'STYLE'].join('|')})\\.md\\b`)],
  ['a private trace file', new RegExp(['\\btraces', '/[\\w.-]+'].join(''))],
  ['an absolute path of one machine', new RegExp(['(^|[^\\w.~$-])/(', 'work|home', ')/'].join(''))],
];

describe('the repo stands alone', () => {
  it('the patterns catch what they are meant to', () => {
    const hits = (s: string): string[] => FORBIDDEN.filter(([, re]) => re.test(s)).map(([what]) => what);
    expect(hits('see ../' + 'shared/x')).toEqual(['a private notes folder']);
    expect(hits('(' + 'STY' + 'LE.md "the boundary")')).toEqual(['private notes']);
    expect(hits('traces' + '/keytool.txt')).toEqual(['a private trace file']);
    expect(hits('at /' + 'work/main/x and /' + 'home/me/y')).toEqual(['an absolute path of one machine']);
    expect(hits('docs/consumers.md, docs/performance.md, ~/' + 'work/x, pkcs11-spy traces, /tmp/trace.txt')).toEqual([]);
  });

  it('no file names notes outside the repo or an absolute path of a build machine', () => {
    const offending: string[] = [];
    for (const f of repoFiles()) {
      const buf = readFileSync(join(root, f));
      if (buf.includes(0)) continue; // binary (golden frames)
      buf
        .toString('utf8')
        .split('\n')
        .forEach((line, i) => {
          for (const [what, re] of FORBIDDEN) if (re.test(line)) offending.push(`${f}:${i + 1}: ${what}: ${line.trim().slice(0, 120)}`);
        });
    }
    expect(offending, 'write the fact into docs/ (consumers.md, stm-api.md, performance.md, design.md) and cite that').toEqual([]);
  });
});
