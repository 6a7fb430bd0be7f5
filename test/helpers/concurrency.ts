// The pthread client test/native/concurrency.c for the concurrency and slow-backend tests and the
// bench: compile it, run it as a child process (many at once), parse its lines, verify every
// signature it printed with node:crypto (the public key comes from the key's certificate, never
// from signbridge), and read a daemon's RSS from /proc.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KeyObject } from 'node:crypto';
import { MECHANISMS, verifies, type Hash } from './signing.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Builds test/native/concurrency.c into `dir` (gcc; fails with the apt-get line when it cannot). */
export function buildConcurrencyClient(dir: string): string {
  const require = createRequire(import.meta.url);
  const include = join(dirname(require.resolve('pkcs11js/package.json')), 'includes', 'pkcs11');
  const out = join(dir, 'concurrency');
  try {
    execFileSync('cc', ['-std=c11', '-D_POSIX_C_SOURCE=200809L', '-O2', '-Wall', '-Wextra', '-Werror', '-I', include,
      join(here, '..', 'native', 'concurrency.c'), '-o', out, '-ldl', '-pthread'], { stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`cannot compile test/native/concurrency.c (apt-get install -y gcc libc6-dev): ${err.stderr?.toString() || err.message}`);
  }
  return out;
}

export interface ClientOptions {
  threads?: number;
  count?: number;
  seconds?: number;
  locking?: 'os' | 'mutex';
  sessions?: 'own' | 'shared';
  keys?: string[];
  seed?: number;
  /** extra threads that only read and search (shared sessions with sessions: 'shared') */
  readers?: number;
  /** stop after this many errors (the client's default is 5) */
  maxErrors?: number;
  quiet?: boolean;
}

export interface ClientSig {
  thread: number;
  i: number;
  label: string;
  ckm: number;
  hash: string;
  mode: 'single' | 'multi';
  us: number;
  msg: Buffer;
  sig: Buffer;
}

export interface ClientRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** wall time of the whole process, ms (spawn → exit) */
  wallMs: number;
  sigs: ClientSig[];
  /** --quiet: one latency per signature, µs */
  lats: number[];
  errors: string[];
  /** the summary line as numbers/strings (pid, locking, sessions, signatures, errors, p50_us, …) */
  summary: Record<string, string>;
}

export function clientArgs(module: string, o: ClientOptions): string[] {
  return [
    module,
    ...(o.threads !== undefined ? ['--threads', String(o.threads)] : []),
    ...(o.count !== undefined ? ['--count', String(o.count)] : []),
    ...(o.seconds !== undefined ? ['--seconds', String(o.seconds)] : []),
    ...(o.locking ? ['--locking', o.locking] : []),
    ...(o.sessions ? ['--sessions', o.sessions] : []),
    ...(o.keys ? ['--keys', o.keys.join(',')] : []),
    ...(o.seed !== undefined ? ['--seed', String(o.seed)] : []),
    ...(o.readers !== undefined ? ['--readers', String(o.readers)] : []),
    ...(o.maxErrors !== undefined ? ['--max-errors', String(o.maxErrors)] : []),
    ...(o.quiet ? ['--quiet'] : []),
  ];
}

export function parseClientOutput(stdout: string): Pick<ClientRun, 'sigs' | 'lats' | 'errors' | 'summary'> {
  const sigs: ClientSig[] = [];
  const lats: number[] = [];
  const errors: string[] = [];
  let summary: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const f = line.split(' ');
    if (f[0] === 'sig' && f.length === 10) {
      sigs.push({
        thread: Number(f[1]), i: Number(f[2]), label: f[3]!, ckm: parseInt(f[4]!, 16), hash: f[5]!,
        mode: f[6] as 'single' | 'multi', us: Number(f[7]), msg: Buffer.from(f[8]!, 'hex'), sig: Buffer.from(f[9]!, 'hex'),
      });
    } else if (f[0] === 'lat') lats.push(Number(f[1]));
    else if (f[0] === 'err') errors.push(line);
    else if (f[0] === 'summary') summary = Object.fromEntries(f.slice(1).map((kv) => kv.split('=') as [string, string]));
  }
  return { sigs, lats, errors, summary };
}

export type RunningClient = Promise<ClientRun> & {
  pid: number;
  /** resolves at the first signature the client prints (or when it exits without one) */
  firstSignature: Promise<void>;
};

/** Runs one client process; never rejects (a failed run is for the caller to describe). */
export function runClient(exe: string, module: string, o: ClientOptions, env: NodeJS.ProcessEnv, timeoutMs = 120_000): RunningClient {
  const t0 = Date.now();
  // a hung daemon must fail the test in bounded time, not after the module's 60 s default per call
  const child = spawn(exe, clientArgs(module, o), { env: { SIGNBRIDGE_TIMEOUT_MS: '20000', ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let signed: () => void = () => undefined;
  let seen = false;
  const firstSignature = new Promise<void>((r) => (signed = r));
  child.stdout.on('data', (d: Buffer) => {
    out.push(d);
    if (!seen && /(^|\n)(sig|lat) /.test(Buffer.concat(out.slice(-2)).toString('utf8'))) {
      seen = true;
      signed();
    }
  });
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<ClientRun>((resolve) => {
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      signed();
      const stdout = Buffer.concat(out).toString('utf8');
      resolve({ status, signal, stdout, stderr: Buffer.concat(err).toString('utf8'), wallMs: Date.now() - t0, ...parseClientOutput(stdout) });
    });
  });
  return Object.assign(done, { pid: child.pid!, firstSignature });
}

export function describeClient(r: ClientRun, what = 'concurrency client'): string {
  const tail = (s: string) => (s.length > 3000 ? `…${s.slice(-3000)}` : s);
  return `${what}: exit ${r.status}${r.signal ? ` (${r.signal})` : ''} after ${r.wallMs} ms\n` +
    `--- errors\n${r.errors.slice(0, 20).join('\n')}\n--- stderr\n${tail(r.stderr)}\n--- summary\n${JSON.stringify(r.summary)}`;
}

/** Signatures that do NOT verify (empty = all good), each described. `pub` maps a key label to its public key. */
export function unverified(sigs: ClientSig[], pub: (label: string) => KeyObject | undefined): string[] {
  const bad: string[] = [];
  for (const s of sigs) {
    const m = MECHANISMS.find((x) => x.ckm === s.ckm);
    const key = pub(s.label);
    const what = `${s.label} ${m?.name ?? s.ckm.toString(16)} ${s.hash} ${s.mode} (thread ${s.thread}, #${s.i})`;
    if (!m || !key) {
      bad.push(`${what}: unknown key or mechanism`);
      continue;
    }
    const h = (s.hash === '-' ? 'sha256' : s.hash) as Hash;
    let ok = false;
    try {
      ok = verifies(key, m, h, s.msg, s.sig);
    } catch (e) {
      bad.push(`${what}: ${(e as Error).message}`);
      continue;
    }
    if (!ok) bad.push(`${what}: does not verify`);
  }
  return bad;
}

/** VmRSS of a process in kB (from /proc/<pid>/status). */
export function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The q-quantile (0..1) of `xs` (nearest rank on a sorted copy). */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}
