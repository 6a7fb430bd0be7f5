// The CSC API v1 client (spec 1.0.4.0 §11): ONE undici Agent (keep-alive, TLS session reuse) for
// every call, an OAuth 2.0 bearer token shared by all of them (credentials.ts), an absolute
// deadline per call, and retries only where the service cannot have processed the request
// (retry.ts). Endpoints are POST with JSON under <base>/csc/v1/; the token endpoint is the one
// `info` names under "oauth2" (docs/csc-backend.md "Connection").
import type { Logger } from 'pino';
import type { Agent } from 'undici';
import { pooledAgent, sendWithRetries } from '../http-pool.js';
import { TokenKeeper, tokenFrom, type AccessToken } from './credentials.js';
import { classifyRefusal, classifyTlsError, cscError, parseCscError, type CscError } from './errors.js';
import { DEFAULT_RETRY, retryableError, retryableStatus, type RetryPolicy } from './retry.js';

export interface CscClientOptions {
  /** SIGNBRIDGE_CSC_URL: the service's base URL (https). */
  url: string;
  clientId: string;
  clientSecret: string;
  /** CA bundle (PEM) of the server certificate; default: Node's roots. */
  ca?: Buffer | undefined;
  userAgent: string;
  logger?: Logger | undefined;
  retry?: RetryPolicy | undefined;
  connections?: number | undefined;
}

export interface CallContext {
  what: string;
  deadline: number;
  budgetMs: number;
  credential?: string | undefined;
}

/** credentials/info (§11.5), the fields signbridge reads. */
export interface CredentialInfo {
  description?: string;
  status?: string;
  key?: { status?: string; algo?: string[]; len?: number; curve?: string };
  cert?: { status?: string; certificates?: string[]; subjectDN?: string; validTo?: string };
  authMode?: string;
  PIN?: { presence?: string };
  OTP?: { presence?: string; type?: string };
  multisign?: number;
}

export function parseBaseUrl(url: string): { origin: string; prefix: string; display: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw cscError('SIGNBRIDGE_ERR_CSC_CONFIG', { detail: `SIGNBRIDGE_CSC_URL / --csc-url "${url}" is not a URL (e.g. https://one.digicert.com/documentmanager)` });
  }
  if (u.protocol !== 'https:') throw cscError('SIGNBRIDGE_ERR_CSC_CONFIG', { detail: `SIGNBRIDGE_CSC_URL must be an https:// URL, got ${u.protocol}//` });
  if (u.username || u.password) throw cscError('SIGNBRIDGE_ERR_CSC_CONFIG', { detail: 'SIGNBRIDGE_CSC_URL must not carry credentials' });
  return { origin: u.origin, prefix: u.pathname.replace(/\/+$/, ''), display: u.host };
}

export class CscClient {
  readonly origin: string;
  readonly display: string;
  private readonly prefix: string;
  private readonly agent: Agent;
  private readonly policy: RetryPolicy;
  private readonly log: Logger | undefined;
  private tokenUrl: URL;
  readonly tokens: TokenKeeper;
  /** Attempts, retries and calls per endpoint (tests and the coalescing numbers read these). */
  readonly stats = { attempts: 0, retries: 0, calls: {} as Record<string, number> };

  constructor(private readonly o: CscClientOptions) {
    const b = parseBaseUrl(o.url);
    this.origin = b.origin;
    this.prefix = b.prefix;
    this.display = b.display;
    this.policy = o.retry ?? DEFAULT_RETRY;
    this.log = o.logger;
    this.tokenUrl = new URL(`${b.prefix}/oauth2/token`, b.origin);
    this.agent = pooledAgent({ ...(o.ca ? { ca: o.ca } : {}), rejectUnauthorized: true }, o.connections ?? 16);
    this.tokens = new TokenKeeper(() => this.fetchToken());
  }

  /** info (§11.1), no authentication; sets the token endpoint from its "oauth2". */
  async info(ctx: CallContext): Promise<{ name?: string; oauth2?: string; methods?: string[]; authType?: string[] }> {
    const r = await this.call<{ name?: string; oauth2?: string; methods?: string[]; authType?: string[] }>('info', {}, ctx, { idempotent: true, auth: false });
    if (typeof r.oauth2 === 'string' && r.oauth2 !== '') {
      // "oauth2" is the authorization server's base URI (§11.1); a value already naming the token endpoint is kept.
      const base = r.oauth2.replace(/\/+$/, '');
      this.tokenUrl = new URL(/\/token$/.test(base) ? base : `${base}/oauth2/token`);
    }
    return r;
  }

  private async fetchToken(): Promise<AccessToken> {
    const deadline = Date.now() + 30_000;
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: this.o.clientId, client_secret: this.o.clientSecret });
    const { status, text } = await this.send(this.tokenUrl.origin, this.tokenUrl.pathname + this.tokenUrl.search, form.toString(), 'application/x-www-form-urlencoded', undefined, { what: 'the OAuth token request', deadline, budgetMs: 30_000 }, true);
    if (status === 200) {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        throw cscError('SIGNBRIDGE_ERR_CSC_RESPONSE', { host: this.display, what: 'the OAuth token request', detail: 'a body that is not JSON' });
      }
      const t = tokenFrom(body, Date.now());
      if (!t) throw cscError('SIGNBRIDGE_ERR_CSC_RESPONSE', { host: this.display, what: 'the OAuth token request', detail: 'no access_token' });
      return t;
    }
    const e = parseCscError(text);
    throw cscError('SIGNBRIDGE_ERR_CSC_AUTH', { host: this.display, detail: [`HTTP ${status}`, e.error, e.description].filter(Boolean).join(': ') }, { status });
  }

  /** One CSC API call (POST JSON) with the bearer token; a 401 renews the token once. */
  async call<T>(endpoint: string, body: unknown, ctx: CallContext, opts: { idempotent: boolean; auth?: boolean }): Promise<T> {
    this.stats.calls[endpoint] = (this.stats.calls[endpoint] ?? 0) + 1;
    const path = `${this.prefix}/csc/v1/${endpoint}`;
    const payload = JSON.stringify(body);
    for (let renewed = false; ; renewed = true) {
      const token = opts.auth === false ? undefined : await this.tokens.get();
      const { status, text } = await this.send(this.origin, path, payload, 'application/json', token, ctx, opts.idempotent);
      if (status >= 200 && status < 300) {
        try {
          return (text.trim() === '' ? {} : JSON.parse(text)) as T;
        } catch {
          throw cscError('SIGNBRIDGE_ERR_CSC_RESPONSE', { host: this.display, what: ctx.what, detail: `HTTP ${status} with a body that is not JSON` });
        }
      }
      const err = parseCscError(text);
      // An expired or revoked bearer token: the service did nothing; renew it and send once more.
      if (status === 401 && token && !renewed && (err.error === undefined || err.error === 'invalid_token' || /token/i.test(err.description ?? ''))) {
        this.tokens.invalidate(token);
        continue;
      }
      throw classifyRefusal(status, err, { host: this.display, what: ctx.what, credential: ctx.credential });
    }
  }

  /** One HTTP exchange with retries by retry.ts (../http-pool.ts); resolves with any answer's status and text. */
  private send(origin: string, path: string, payload: string, type: string, token: string | undefined, ctx: CallContext, idempotent: boolean): Promise<{ status: number; text: string }> {
    const headers = {
      accept: 'application/json',
      'content-type': type,
      'user-agent': this.o.userAgent,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    };
    return sendWithRetries(this.agent, { origin, path, method: 'POST', headers, body: payload }, ctx.deadline, {
      policy: this.policy,
      retryableError: (e) => retryableError(e, idempotent),
      retryableAnswer: (status, text) => {
        if (!retryableStatus(status, idempotent)) return undefined;
        const body = parseCscError(text);
        return `HTTP ${status}${body.description ? ` ${body.description}` : ''}`;
      },
      tlsError: (e) => classifyTlsError(e, this.display),
      noAnswer: (_attempt, last) => (last ? `${last}; then no answer` : 'no answer'),
      deadlineError: (last, cause) => this.deadlineError(ctx, last, cause),
      unavailableError: (attempts, last, opts) => cscError('SIGNBRIDGE_ERR_CSC_UNAVAILABLE', { host: this.display, what: ctx.what, attempts, last }, opts),
      stats: this.stats,
      logger: this.log,
      retryMessage: 'CSC call failed before the service processed it; retrying',
      what: ctx.what,
    });
  }

  private deadlineError(ctx: CallContext, last: string, cause?: unknown): CscError {
    return cscError('SIGNBRIDGE_ERR_CSC_DEADLINE', { host: this.display, what: ctx.what, ms: ctx.budgetMs, last }, { cause });
  }

  /** credentials/list (§11.4), page by page. */
  async listCredentials(ctx: CallContext): Promise<string[]> {
    const out: string[] = [];
    let pageToken: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const r = await this.call<{ credentialIDs?: unknown; nextPageToken?: unknown }>('credentials/list', { maxResults: 100, ...(pageToken ? { pageToken } : {}) }, ctx, { idempotent: true });
      if (!Array.isArray(r.credentialIDs)) throw cscError('SIGNBRIDGE_ERR_CSC_RESPONSE', { host: this.display, what: ctx.what, detail: 'no credentialIDs array' });
      out.push(...r.credentialIDs.filter((x): x is string => typeof x === 'string'));
      if (typeof r.nextPageToken !== 'string' || r.nextPageToken === '') break;
      pageToken = r.nextPageToken;
    }
    return out;
  }

  credentialInfo(credentialID: string, ctx: CallContext): Promise<CredentialInfo> {
    return this.call<CredentialInfo>('credentials/info', { credentialID, certificates: 'chain', certInfo: true, authInfo: true }, { ...ctx, credential: credentialID }, { idempotent: true });
  }

  async sendOtp(credentialID: string, ctx: CallContext): Promise<void> {
    await this.call('credentials/sendOTP', { credentialID }, { ...ctx, credential: credentialID }, { idempotent: false });
  }

  /** credentials/authorize (§11.7) → the SAD and its lifetime in seconds (spec default 3600). */
  async authorize(body: { credentialID: string; numSignatures: number; OTP?: string; PIN?: string }, ctx: CallContext): Promise<{ sad: string; expiresIn: number }> {
    const r = await this.call<{ SAD?: unknown; expiresIn?: unknown }>('credentials/authorize', body, { ...ctx, credential: body.credentialID }, { idempotent: false });
    if (typeof r.SAD !== 'string' || r.SAD === '') throw cscError('SIGNBRIDGE_ERR_CSC_RESPONSE', { host: this.display, what: ctx.what, detail: 'no SAD in the answer' });
    return { sad: r.SAD, expiresIn: typeof r.expiresIn === 'number' && r.expiresIn > 0 ? r.expiresIn : 3600 };
  }

  /** signatures/signHash (§11.9): several hashes in one call, one signature each, in order. */
  async signHash(body: { credentialID: string; SAD: string; hash: string[]; hashAlgo: string; signAlgo: string }, ctx: CallContext): Promise<Buffer[]> {
    const r = await this.call<{ signatures?: unknown }>('signatures/signHash', body, { ...ctx, credential: body.credentialID }, { idempotent: false });
    if (!Array.isArray(r.signatures) || r.signatures.length !== body.hash.length || !r.signatures.every((s) => typeof s === 'string')) {
      throw cscError('SIGNBRIDGE_ERR_CSC_RESPONSE', { host: this.display, what: ctx.what, detail: `expected ${body.hash.length} signature(s) in "signatures"` });
    }
    return (r.signatures as string[]).map((s) => Buffer.from(s, 'base64'));
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
