// Fault injection (docs/emulator.md "Faults"): latency, 429 with Retry-After, 503, dropped
// connections — by rate (0..1; 1 = always) or, deterministic for tests, by count for the next N
// sign calls. Faults apply to API calls only, never to /__admin.

import { isIP } from 'node:net';

export interface Faults {
  /** added before every API answer (fault answers included) */
  latencyMs?: number;
  /** probability 0..1 of 429 Too Many Requests */
  rate429?: number;
  /** Retry-After seconds on a 429 (default 1); null: send no Retry-After header */
  retryAfterS?: number | null;
  /** probability 0..1 of 503 Service Unavailable (an HTML body, as a gateway sends) */
  rate503?: number;
  /** probability 0..1 of destroying the connection without any response */
  dropRate?: number;
  /** which API calls the rates hit: 'all' (default) or only 'sign' (POST keypairs/{id}/sign) */
  scope?: 'all' | 'sign';
  /** the next N sign calls get 429 (counted down) */
  fail429Next?: number;
  /** the next N sign calls get 503 */
  fail503Next?: number;
  /** the next N sign calls have their connection dropped */
  dropNext?: number;
  /** sign answers carry only {id}: the client must fetch GET signatures/{id} (docs/stm-api.md) */
  signResponseIdOnly?: boolean;
}

export type FaultAction = { kind: 'none' } | { kind: '429'; retryAfterS: number | null } | { kind: '503' } | { kind: 'drop' };

const RATE_KEYS = ['rate429', 'rate503', 'dropRate'] as const;
const COUNT_KEYS = ['fail429Next', 'fail503Next', 'dropNext'] as const;

/** Validates faults from a flag or the admin endpoint; throws an Error whose message names the field. */
export function validateFaults(input: unknown): Faults {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error('faults must be a JSON object');
  const f = input as Record<string, unknown>;
  const known = new Set<string>(['latencyMs', 'retryAfterS', 'scope', 'signResponseIdOnly', ...RATE_KEYS, ...COUNT_KEYS]);
  for (const k of Object.keys(f)) if (!known.has(k)) throw new Error(`unknown fault "${k}" (known: ${[...known].join(', ')})`);
  const out: Faults = {};
  for (const k of RATE_KEYS) {
    const v = f[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new Error(`${k} must be a number from 0 to 1`);
    out[k] = v;
  }
  for (const k of [...COUNT_KEYS, 'latencyMs'] as const) {
    const v = f[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 600_000) throw new Error(`${k} must be a whole number from 0 to 600000`);
    out[k] = v;
  }
  if (f.retryAfterS !== undefined) {
    const v = f.retryAfterS;
    if (v !== null && (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 86_400)) throw new Error('retryAfterS must be null or whole seconds from 0 to 86400');
    out.retryAfterS = v;
  }
  if (f.scope !== undefined) {
    if (f.scope !== 'all' && f.scope !== 'sign') throw new Error('scope must be "all" or "sign"');
    out.scope = f.scope;
  }
  if (f.signResponseIdOnly !== undefined) {
    if (typeof f.signResponseIdOnly !== 'boolean') throw new Error('signResponseIdOnly must be true or false');
    out.signResponseIdOnly = f.signResponseIdOnly;
  }
  return out;
}

export class FaultState {
  private f: Faults = {};

  constructor(
    initial: Faults = {},
    private readonly random: () => number = Math.random,
  ) {
    this.set(initial);
  }

  /** Replaces the whole configuration ({} switches every fault off). */
  set(f: Faults): void {
    this.f = validateFaults(f);
  }

  get(): Faults {
    return { ...this.f };
  }

  latencyMs(): number {
    return this.f.latencyMs ?? 0;
  }

  idOnly(): boolean {
    return this.f.signResponseIdOnly === true;
  }

  /** Decides the fault for one API call; count forms are consumed here. */
  decide(isSign: boolean): FaultAction {
    const retryAfterS = this.f.retryAfterS === undefined ? 1 : this.f.retryAfterS;
    if (isSign) {
      if (this.take('dropNext')) return { kind: 'drop' };
      if (this.take('fail429Next')) return { kind: '429', retryAfterS };
      if (this.take('fail503Next')) return { kind: '503' };
    }
    if (this.f.scope === 'sign' && !isSign) return { kind: 'none' };
    if (this.hit(this.f.dropRate)) return { kind: 'drop' };
    if (this.hit(this.f.rate429)) return { kind: '429', retryAfterS };
    if (this.hit(this.f.rate503)) return { kind: '503' };
    return { kind: 'none' };
  }

  private take(k: (typeof COUNT_KEYS)[number]): boolean {
    const n = this.f[k] ?? 0;
    if (n <= 0) return false;
    this.f[k] = n - 1;
    return true;
  }

  private hit(rate: number | undefined): boolean {
    if (!rate) return false;
    return rate >= 1 || this.random() < rate;
  }
}

/**
 * The admin endpoint answers loopback peers only (127.0.0.0/8, ::1, and IPv4-mapped 127.x).
 * Anything else — including an unknown address — is refused.
 */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(a) === 4) return a.startsWith('127.');
  if (isIP(a) === 6) return a === '::1' || a === '0:0:0:0:0:0:0:1';
  return false;
}
