// The rules `npm run conformance` judges a pkcs11test run by (test/conformance/expectations.ts),
// and the shape of the list it judges against. The run itself (pkcs11test through a real daemon
// and against SoftHSMv2) is `npm run conformance`, in .ci/run after `npm test`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { judge, loadExpectations, type Expectations } from '../conformance/expectations.js';
import type { CaseResult, Outcome } from '../conformance/pkcs11test.js';

const r = (name: string, outcome: Outcome): CaseResult => ({ name, outcome, ms: 1, detail: 'd' });

function expectations(): Expectations {
  return {
    listed: new Map([
      ['A.Creates', { section: 'createsObjects', reason: 'C_GenerateKey' }],
      ['A.Direct', { section: 'failsDirectly', reason: 'fails directly' }],
      ['A.Pending', { section: 'pendingModuleFixes', reason: 'item 1' }],
    ]),
  };
}

describe('judging a conformance run', () => {
  it('listed failures are allowed, pending ones apart (they may hang), clean cases pass', () => {
    const v = judge(
      expectations(),
      [r('A.Creates', 'fail'), r('A.Direct', 'fail'), r('A.Pending', 'timeout'), r('A.Ok', 'pass'), r('A.Skip', 'skip')],
      [r('A.Creates', 'pass'), r('A.Direct', 'fail'), r('A.Pending', 'pass'), r('A.Ok', 'pass'), r('A.Skip', 'pass')],
    );
    expect(v.errors).toEqual([]);
    expect(v.allowed.map((x) => x.name)).toEqual(['A.Creates', 'A.Direct']);
    expect(v.pending.map((x) => x.name)).toEqual(['A.Pending']);
  });

  it('an unlisted failure, a listed pass, a "fails directly" case that passes directly, hangs and crashes are errors', () => {
    const v = judge(
      expectations(),
      [r('A.Creates', 'pass'), r('A.Direct', 'fail'), r('A.Pending', 'fail'), r('A.New', 'fail'), r('A.Hang', 'timeout'), r('A.Boom', 'crash')],
      [r('A.Creates', 'pass'), r('A.Direct', 'pass'), r('A.Pending', 'pass'), r('A.New', 'pass'), r('A.Hang', 'pass'), r('A.Boom', 'crash')],
    );
    expect(v.errors).toHaveLength(6);
    expect(v.errors.join('\n')).toMatch(/A\.Creates: listed in createsObjects but PASSES/);
    expect(v.errors.join('\n')).toMatch(/A\.Direct: listed as "fails on SoftHSMv2 directly too" but directly it is PASS/);
    expect(v.errors.join('\n')).toMatch(/A\.New: FAIL through signbridge, not listed/);
    expect(v.errors.join('\n')).toMatch(/A\.Hang: TIMEOUT through signbridge/);
    expect(v.errors.join('\n')).toMatch(/A\.Boom: CRASH through signbridge/);
    expect(v.errors.join('\n')).toMatch(/A\.Boom: CRASH on SoftHSMv2 directly/);
  });

  it('a listed case pkcs11test no longer has is an error', () => {
    expect(judge(expectations(), [r('A.Creates', 'fail')], []).errors.join('\n')).toMatch(/A\.Direct: listed, but pkcs11test has no such case/);
  });
});

describe('test/conformance/expected-failures.json', () => {
  it('loads: known sections only, every case once with a reason', () => {
    const exp = loadExpectations(join(import.meta.dirname, '..', 'conformance', 'expected-failures.json'));
    expect(exp.listed.size).toBeGreaterThan(100);
    for (const [name, { reason }] of exp.listed) expect(reason.trim(), name).not.toBe('');
  });

  it('rejects an unknown section and a case without a reason', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-expect-'));
    try {
      const f = join(dir, 'e.json');
      writeFileSync(f, JSON.stringify({ otherReasons: { reason: 'x', cases: {} } }));
      expect(() => loadExpectations(f)).toThrow(/unknown section "otherReasons"/);
      writeFileSync(f, JSON.stringify({ createsObjects: { reason: 'x', cases: { 'A.B': ' ' } } }));
      expect(() => loadExpectations(f)).toThrow(/A\.B needs a reason/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
