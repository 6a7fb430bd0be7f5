// A cache for what the platform tests fetch or build and reuse between runs — node-gyp prebuilds
// per target, pkcs11js cross-built for arm64, official Node binaries from npm — kept OUTSIDE the
// repo: $SIGNBRIDGE_TEST_CACHE, else ~/.cache/signbridge-test/. Entries are keyed by what they are
// made from (a hash of the sources, a package version), so a stale entry is never reused; a lock
// directory per entry lets parallel test files (and worktrees) share one build.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function testCache(): string {
  const dir = process.env.SIGNBRIDGE_TEST_CACHE || join(homedir(), '.cache', 'signbridge-test');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** sha256 over the files (recursively) under `paths`, in name order: a cache key. */
export function contentKey(base: string, paths: string[], extra = ''): string {
  const h = createHash('sha256').update(extra);
  const add = (p: string): void => {
    const full = join(base, p);
    if (statSync(full).isDirectory()) {
      for (const e of readdirSync(full).sort()) add(join(p, e));
    } else {
      h.update(p).update('\0').update(readFileSync(full)).update('\0');
    }
  };
  for (const p of paths) add(p);
  return h.digest('hex').slice(0, 16);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `make` once for `entry` (a directory in the cache) unless `done(entry)` already holds;
 * other processes wait for the holder's lock (a lock whose process is gone is taken over).
 */
export async function cached(entry: string, done: (dir: string) => boolean, make: (dir: string) => Promise<void>, timeoutMs = 900_000): Promise<string> {
  const lock = `${entry}.lock`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (done(entry)) return entry;
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      let holder = NaN;
      try {
        holder = Number(readFileSync(join(lock, 'pid'), 'utf8'));
      } catch {
        /* being created or removed */
      }
      if (Number.isInteger(holder) && !alive(holder)) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`${lock} is held by pid ${holder} for too long; remove it if no test run is building ${entry}`);
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    if (!done(entry)) {
      rmSync(entry, { recursive: true, force: true });
      await make(entry);
      if (!done(entry)) throw new Error(`building ${entry} finished but left it incomplete`);
    }
    return entry;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Fails (never skips) when a tool is missing, naming the Debian package that brings it. */
export function requireTool(cmd: string, aptLine: string): string {
  const r = spawnSync('sh', ['-c', `command -v "${cmd}"`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} is not on PATH: ${aptLine}`);
  return r.stdout.trim();
}

export function requireFile(path: string, aptLine: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: ${aptLine}`);
  return path;
}
