// google/pkcs11test (https://github.com/google/pkcs11test, Apache-2.0): find its source archive,
// build it once per archive in a cache under the OS temp dir (never in the repo), list its cases
// and run one case per process. One process per case because its fixtures can hang a whole run
// after a refused RW session; every case gets a timeout, so a hang is a result, not a stuck CI job.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';

export const ARCHIVE_NAME = 'pkcs11test-src.tgz';
export const ARCHIVE_ENV = 'SIGNBRIDGE_PKCS11TEST_SRC';

export class ConformanceSetupError extends Error {
  readonly code = 'SIGNBRIDGE_ERR_CONFORMANCE_SETUP';
  constructor(message: string) {
    super(message);
    this.name = 'ConformanceSetupError';
  }
}

const HOW_TO_GET =
  `set ${ARCHIVE_ENV} to a source archive (.tgz) of google/pkcs11test — e.g. ` +
  '`git clone https://github.com/google/pkcs11test && tar czf pkcs11test-src.tgz -C pkcs11test .` — ' +
  `or put it, named exactly ${ARCHIVE_NAME}, at most 3 directory levels below the directory that holds this checkout`;

/** Breadth-first, at most `depth` levels below `dir`; skips dot-directories and node_modules. */
function findBelow(dir: string, name: string, depth: number): string | undefined {
  let level = [dir];
  for (let d = 1; d <= depth; d++) {
    const next: string[] = [];
    for (const parent of level) {
      let entries;
      try {
        entries = readdirSync(parent, { withFileTypes: true });
      } catch {
        continue; // unreadable directory: not ours to search
      }
      entries.sort((a, b) => a.name.localeCompare(b.name));
      for (const e of entries) {
        if (e.isFile() && e.name === name) return join(parent, e.name);
        if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules') next.push(join(parent, e.name));
      }
    }
    level = next;
  }
  return undefined;
}

/** The archive: $SIGNBRIDGE_PKCS11TEST_SRC, else pkcs11test-src.tgz beside the checkout (CI machines keep it there). */
export function locateArchive(repoRoot: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[ARCHIVE_ENV];
  if (fromEnv) {
    const p = resolve(fromEnv);
    if (!existsSync(p) || !statSync(p).isFile()) throw new ConformanceSetupError(`${ARCHIVE_ENV}=${fromEnv}: no such file; ${HOW_TO_GET}`);
    return p;
  }
  const found = findBelow(dirname(resolve(repoRoot)), ARCHIVE_NAME, 3);
  if (!found) throw new ConformanceSetupError(`the pkcs11test source archive was not found: ${HOW_TO_GET}`);
  return found;
}

/** Builds pkcs11test from `archive` into <tmpdir>/signbridge-pkcs11test/<sha256 prefix>/ unless built there already. */
export function buildPkcs11test(archive: string, log: (s: string) => void): string {
  const hash = createHash('sha256').update(readFileSync(archive)).digest('hex').slice(0, 16);
  const cache = join(tmpdir(), 'signbridge-pkcs11test', hash);
  const bin = join(cache, 'pkcs11test');
  if (existsSync(bin)) return bin;
  log(`building pkcs11test from ${basename(archive)} (sha256 ${hash}…) in ${cache} …`);
  // build beside the final place, then rename: an interrupted build never looks finished
  const work = `${cache}.build-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    execFileSync('tar', ['xzf', archive, '-C', work], { stdio: ['ignore', 'ignore', 'pipe'] });
    // the archive may hold the tree at its top or in one directory (GitHub's archives do)
    const top = readdirSync(work);
    const src = existsSync(join(work, 'makefile')) || existsSync(join(work, 'Makefile')) ? work : top.length === 1 ? join(work, top[0]!) : work;
    execFileSync('make', ['-C', src, '-j2', 'pkcs11test'], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20 });
    // another run may have finished the same build meanwhile: keep its copy (it may be running)
    if (!existsSync(bin)) {
      rmSync(cache, { recursive: true, force: true });
      renameSync(src, cache);
    }
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new ConformanceSetupError(`building pkcs11test failed (needs g++ and make): ${err.stderr?.toString().slice(-3000) ?? String(e)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return bin;
}

export interface Target {
  /** shown in the output: "signbridge" or "direct" */
  name: string;
  module: string;
  /** the slot id pkcs11test tests (-s) */
  slot: string;
  pin: string;
  env: NodeJS.ProcessEnv;
}

/**
 * -X: the tokens' SO PIN is not kept (token-setup.ts), so SO-login cases are skipped on both targets
 * alike. pkcs11test takes the user PIN only as -u: it is the PIN of a throwaway token, or a client
 * secret made for this one run, never a real one.
 */
function args(t: Target): string[] {
  return ['-m', basename(t.module), '-l', dirname(t.module), '-s', t.slot, '-u', t.pin, '-X'];
}

/** `--gtest_list_tests`, as full names (Suite.Case, parameterised ones with their /N). */
export function listCases(bin: string, t: Target): string[] {
  const out = execFileSync(bin, [...args(t), '--gtest_list_tests'], { env: t.env, encoding: 'utf8', timeout: 60_000 });
  const cases: string[] = [];
  let suite = '';
  for (const raw of out.split('\n')) {
    const line = raw.replace(/#.*$/, '').trimEnd();
    if (!line.trim()) continue;
    if (!raw.startsWith(' ')) suite = line.trim();
    else cases.push(suite + line.trim());
  }
  if (cases.length === 0) throw new ConformanceSetupError(`pkcs11test --gtest_list_tests listed no case against ${t.name}:\n${out}`);
  return cases;
}

export type Outcome = 'pass' | 'fail' | 'skip' | 'timeout' | 'crash';

export interface CaseResult {
  name: string;
  outcome: Outcome;
  ms: number;
  /** the first failure lines, or what ended the process */
  detail: string;
}

/**
 * One case in its own process. pass/fail as gtest reports them; skip when pkcs11test skipped it
 * ("Following tests were skipped because: …") or its filter ran nothing (e.g. a login-only case on
 * a token without CKF_LOGIN_REQUIRED); timeout after `timeoutMs` (SIGKILL); crash on a signal or
 * an exit without a gtest verdict.
 */
export function runCase(bin: string, t: Target, name: string, timeoutMs: number): Promise<CaseResult> {
  const start = Date.now();
  return new Promise((resolvePromise) => {
    const p = spawn(bin, [...args(t), `--gtest_filter=${name}`], { env: t.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (c: Buffer): void => {
      out += c.toString('utf8');
      if (out.length > 1 << 20) out = out.slice(-(256 << 10));
    };
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, timeoutMs);
    const done = (outcome: Outcome, detail: string): void => {
      clearTimeout(timer);
      resolvePromise({ name, outcome, ms: Date.now() - start, detail });
    };
    p.on('error', (e) => done('crash', `cannot start: ${e.message}`));
    p.on('close', (code, signal) => {
      if (timedOut) return done('timeout', `no verdict after ${timeoutMs} ms (killed)`);
      if (signal) return done('crash', `killed by ${signal}; output ends: ${out.slice(-400).trim()}`);
      const failed = /^\[ {2}FAILED {2}\] /m.test(out);
      const passed = /^\[ {2}PASSED {2}\] (\d+) test/m.exec(out);
      if (failed) {
        const lines = out.split('\n').filter((l) => /Failure|Expected|Which is|Value of|Actual/.test(l));
        return done('fail', lines.slice(0, 4).join(' | ').trim() || `exit ${code}`);
      }
      if (!passed || code !== 0) return done('crash', `exit ${code} without a gtest verdict; output ends: ${out.slice(-400).trim()}`);
      if (passed[1] === '0') return done('skip', 'the filter ran no test');
      const skipped = /Following tests were skipped because: (.*)\n((?: {2}.*\n?)*)/g;
      for (const m of out.matchAll(skipped)) {
        if (m[2]!.split('\n').some((l) => l.trim() === name)) return done('skip', m[1]!.trim());
      }
      if (/^\[ {2}SKIPPED \] /m.test(out)) return done('skip', 'GTEST_SKIP');
      done('pass', '');
    });
  });
}

/** Runs every case of every job on `workers` parallel lanes; `lane` picks the target for a lane. */
export async function runAll<J>(
  jobs: J[],
  workers: number,
  run: (job: J, lane: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async (i: number): Promise<void> => {
    while (next < jobs.length) await run(jobs[next++]!, i);
  };
  await Promise.all(Array.from({ length: workers }, (_, i) => lane(i)));
}
