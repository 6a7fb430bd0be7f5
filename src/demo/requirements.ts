// System requirements (scripts/system-requirements.json — the same file scripts/bootstrap.mjs reads):
// what must exist on this machine, and which Debian package provides it.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { packageRoot } from '../native/loader.js';

export type Purpose = 'build' | 'demo' | 'test' | 'bench';

export interface Requirement {
  name: string;
  package: string;
  command?: string;
  files?: string[];
  needed_for: Purpose[];
  note?: string;
  /** a Debian suite the package comes from (pinned for it alone), e.g. bookworm-backports */
  suite?: string;
}

export function multiarch(): string {
  const m: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', arm: 'arm-linux-gnueabihf', ia32: 'i386-linux-gnu' };
  return m[process.arch] ?? `${process.arch}-linux-gnu`;
}

export function requirementsFile(root = packageRoot()): string {
  return join(root, 'scripts', 'system-requirements.json');
}

export function loadRequirements(root = packageRoot()): Requirement[] {
  const file = requirementsFile(root);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file} (${(e as Error).message}): reinstall signbridge from a complete checkout`);
  }
  return (JSON.parse(text) as { requirements: Requirement[] }).requirements;
}

export function findOnPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** The file a requirement names that exists here (with {multiarch} expanded), if any. */
export function resolveFile(r: Requirement): string | undefined {
  return r.files?.map((f) => f.replaceAll('{multiarch}', multiarch())).find((f) => existsSync(f));
}

export function isMet(r: Requirement): boolean {
  return (r.command !== undefined && findOnPath(r.command) !== undefined) || resolveFile(r) !== undefined;
}

export function missingFor(purposes: Purpose[], reqs = loadRequirements()): Requirement[] {
  return reqs.filter((r) => r.needed_for.some((p) => purposes.includes(p)) && !isMet(r));
}

/**
 * Root's commands that add `suite` (deb.debian.org, main) and pin it for `pkg` alone; the same lines
 * as .ci/run and scripts/bootstrap.mjs. Backports is NotAutomatic, so nothing else comes from it.
 */
export function suiteLines(suite: string, pkg: string): string[] {
  return [
    `{ grep -Eqs '^[^#]*${suite}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources || echo 'deb http://deb.debian.org/debian ${suite} main' > /etc/apt/sources.list.d/${suite}.list; }`,
    `printf 'Package: ${pkg}\\nPin: release n=${suite}\\nPin-Priority: 500\\n' > /etc/apt/preferences.d/signbridge-${pkg}`,
    'apt-get update',
    `apt-get install -y -t ${suite} ${pkg}`,
  ];
}

/** `apt-get install -y …` for the missing requirements (then the lines of any from another suite). */
export function aptLine(missing: Requirement[]): string {
  const plain = [...new Set(missing.filter((r) => !r.suite).map((r) => r.package))];
  const lines = plain.length > 0 ? [`apt-get install -y ${plain.join(' ')}`] : [];
  for (const r of missing) if (r.suite) lines.push(...suiteLines(r.suite, r.package));
  return lines.join(' && ');
}

/** Throws with the apt-get line when something `purposes` need is missing. */
export function assertRequirements(purposes: Purpose[]): void {
  const missing = missingFor(purposes);
  if (missing.length > 0) {
    throw new Error(`missing system requirements: ${missing.map((r) => `${r.name} (${r.package})`).join(', ')}. Run as root: ${aptLine(missing)}`);
  }
}

/** Path of a file requirement by package name, e.g. the libp11 engine or win32-loader.exe. */
export function requiredFile(pkg: string): string {
  const r = loadRequirements().find((x) => x.package === pkg && x.files);
  const f = r && resolveFile(r);
  if (!f) throw new Error(`${r?.name ?? pkg} not found: run as root: ${r ? aptLine([r]) : `apt-get install -y ${pkg}`}`);
  return f;
}
