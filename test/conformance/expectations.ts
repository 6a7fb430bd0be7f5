// test/conformance/expected-failures.json: the pkcs11test cases that may fail through signbridge,
// each with its reason, and the verdict of one run against it. Only two reasons are allowed for
// good — the case creates or generates objects (a signing bridge never does), or it fails on
// SoftHSMv2 directly too (proved by the direct run of the same conformance run) — plus a section
// of cases that wait for module fixes, allowed and printed apart until it is removed.
import { readFileSync } from 'node:fs';
import type { CaseResult } from './pkcs11test.js';

export const SECTIONS = ['createsObjects', 'failsDirectly', 'pendingModuleFixes'] as const;
export type Section = (typeof SECTIONS)[number];

export interface Expectations {
  /** case name → its section and the reason written beside it */
  listed: Map<string, { section: Section; reason: string }>;
}

interface SectionJson {
  reason: string;
  cases: Record<string, string>;
}

/** Reads and checks the file's shape: every case in one section only, each with a reason. */
export function loadExpectations(file: string): Expectations {
  const json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const listed = new Map<string, { section: Section; reason: string }>();
  for (const key of Object.keys(json)) {
    if (key !== '$comment' && !(SECTIONS as readonly string[]).includes(key)) {
      throw new Error(`${file}: unknown section "${key}" (allowed: ${SECTIONS.join(', ')})`);
    }
  }
  for (const section of SECTIONS) {
    const s = json[section] as SectionJson | undefined;
    if (!s) continue; // pendingModuleFixes goes away once the fixes are merged
    if (typeof s.reason !== 'string' || typeof s.cases !== 'object') throw new Error(`${file}: section ${section} needs "reason" and "cases"`);
    for (const [name, why] of Object.entries(s.cases)) {
      if (listed.has(name)) throw new Error(`${file}: ${name} is listed twice`);
      if (typeof why !== 'string' || !why.trim()) throw new Error(`${file}: ${name} needs a reason`);
      listed.set(name, { section, reason: why });
    }
  }
  return { listed };
}

export interface Verdict {
  /** failures through signbridge the file allows for good */
  allowed: Array<CaseResult & { reason: string }>;
  /** failures (or hangs) through signbridge that wait for a module fix */
  pending: Array<CaseResult & { reason: string }>;
  /** everything that makes the run fail, one line each */
  errors: string[];
}

/**
 * Compares the run with the file. Errors: a failure, hang or crash through signbridge that is not
 * listed; a listed case that did not fail (the list must stay true); a "fails directly" case that
 * did not fail directly; a listed case pkcs11test no longer has; a hang or crash directly on
 * SoftHSMv2. A case waiting for a module fix may hang (its RW-session fixtures do) and is allowed.
 */
export function judge(exp: Expectations, bridge: CaseResult[], direct: CaseResult[]): Verdict {
  const verdict: Verdict = { allowed: [], pending: [], errors: [] };
  const directByName = new Map(direct.map((r) => [r.name, r]));
  for (const r of bridge) {
    const entry = exp.listed.get(r.name);
    const bad = r.outcome !== 'pass' && r.outcome !== 'skip';
    if (!entry) {
      if (bad) verdict.errors.push(`${r.name}: ${r.outcome.toUpperCase()} through signbridge, not listed — ${r.detail}`);
      continue;
    }
    if (!bad) {
      verdict.errors.push(`${r.name}: listed in ${entry.section} but ${r.outcome === 'pass' ? 'PASSES' : 'is SKIPPED'} through signbridge: remove it from the list`);
      continue;
    }
    if (entry.section === 'pendingModuleFixes') {
      verdict.pending.push({ ...r, reason: entry.reason });
      continue;
    }
    if (r.outcome !== 'fail') {
      verdict.errors.push(`${r.name}: ${r.outcome.toUpperCase()} through signbridge (a listed failure may fail, never hang or crash) — ${r.detail}`);
      continue;
    }
    if (entry.section === 'failsDirectly') {
      const d = directByName.get(r.name);
      if (d?.outcome !== 'fail') {
        verdict.errors.push(`${r.name}: listed as "fails on SoftHSMv2 directly too" but directly it is ${d ? d.outcome.toUpperCase() : 'not run'}`);
        continue;
      }
    }
    verdict.allowed.push({ ...r, reason: entry.reason });
  }
  const ran = new Set(bridge.map((r) => r.name));
  for (const name of exp.listed.keys()) {
    if (!ran.has(name)) verdict.errors.push(`${name}: listed, but pkcs11test has no such case: remove it from the list`);
  }
  for (const d of direct) {
    if (d.outcome === 'timeout' || d.outcome === 'crash') verdict.errors.push(`${d.name}: ${d.outcome.toUpperCase()} on SoftHSMv2 directly — ${d.detail}`);
  }
  return verdict;
}
