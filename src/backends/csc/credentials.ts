// The OAuth 2.0 client credentials of the CSC service (RFC 6749 §4.4; CSC API v1 §8.3.3
// oauth2/token) and the access token they buy. Secrets come from the environment or a 0600 file,
// never argv (docs/csc-backend.md "Credentials"). The token is fetched once, shared by every call,
// and renewed before it expires (single flight), so a signature never waits for a token.
import { readFileSync, statSync } from 'node:fs';
import { cscError } from './errors.js';

/** A secret from a file: trailing newline stripped; refused when group/others can read it. */
export function readCscSecretFile(file: string, what: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (e) {
    throw cscError('SIGNBRIDGE_ERR_CSC_CONFIG', { detail: `cannot read ${what} file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})` });
  }
  if ((mode & 0o077) !== 0) {
    throw cscError('SIGNBRIDGE_ERR_CSC_CONFIG', { detail: `${what} file ${file} is readable by group or others (mode 0${(mode & 0o777).toString(8)}): chmod 600 it` });
  }
  const v = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  if (v === '') throw cscError('SIGNBRIDGE_ERR_CSC_CONFIG', { detail: `${what} file ${file} is empty` });
  return v;
}

export function readCaFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw cscError('SIGNBRIDGE_ERR_CSC_CONFIG', { detail: `cannot read the CA file ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` });
  }
}

export interface AccessToken {
  value: string;
  /** Date.now() ms after which it is renewed before use. */
  renewAt: number;
}

/** What the token endpoint answered → the token and when to renew it (a fifth of its life early, at most a minute). */
export function tokenFrom(body: { access_token?: unknown; expires_in?: unknown }, now: number): AccessToken | undefined {
  if (typeof body.access_token !== 'string' || body.access_token === '') return undefined;
  const life = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in * 1000 : 3600_000;
  return { value: body.access_token, renewAt: now + life - Math.min(60_000, life / 5) };
}

/**
 * One token shared by all callers; `fetch` asks the token endpoint. A caller that finds it due
 * for renewal starts one fetch that everybody waiting shares. `invalidate` drops a token the
 * service refused (401), so the next call fetches a new one.
 */
export class TokenKeeper {
  private token: AccessToken | undefined;
  private pending: Promise<string> | undefined;
  /** Token requests made (tests read it). */
  fetches = 0;

  constructor(private readonly fetch: () => Promise<AccessToken>) {}

  get(now = Date.now()): Promise<string> | string {
    if (this.token && now < this.token.renewAt) return this.token.value;
    this.pending ??= (async () => {
      this.fetches++;
      try {
        const t = await this.fetch();
        this.token = t;
        return t.value;
      } finally {
        this.pending = undefined;
      }
    })();
    return this.pending;
  }

  invalidate(value: string): void {
    if (this.token?.value === value) this.token = undefined;
  }
}
