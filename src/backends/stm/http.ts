// The STM REST client: ONE undici Agent (keep-alive, TLS session reuse, mTLS and/or x-api-key)
// for every call the daemon makes, so a signature rides an already-open, already-authenticated
// connection (docs/stm-backend.md "Connection"). Every call has an absolute deadline; retries
// follow retry.ts and never run past it.
import type { Logger } from 'pino';
import { Agent } from 'undici';
import type { TlsOptions } from './credentials.js';
import { classifyRefusal, classifyTlsError, parseErrorBody, stmError, StmError } from './errors.js';
import { DEFAULT_RETRY, RETRY_STATUSES, decideRetry, isRetryableError, parseRetryAfter, type RetryPolicy } from './retry.js';

export const API_BASE = '/signingmanager/api/v1/';

export interface StmClientOptions {
  /** SM_HOST, e.g. https://clientauth.one.digicert.com (a path prefix is kept). */
  host: string;
  apiKey?: string | undefined;
  tls: TlsOptions;
  userAgent: string;
  logger?: Logger | undefined;
  retry?: RetryPolicy | undefined;
  /** Most connections to the host at once (default 64: N concurrent signers at one round trip each need N; docs/performance.md). */
  connections?: number | undefined;
}

export interface CallContext {
  /** "the sign request", "listing certificates" … for messages. */
  what: string;
  /** Absolute deadline (Date.now() ms) … */
  deadline: number;
  /** … and the budget it came from, for messages. */
  budgetMs: number;
  /** Keypair alias/id, for refusal messages. */
  keypair?: string;
  sigAlg?: string;
}

export interface CertificateItem {
  id?: string;
  alias?: string;
  cert?: string;
  certificate_status?: string;
  default_cert?: boolean;
  valid_to?: string;
  account?: unknown;
  keypair?: { id?: string; alias?: string };
  chain?: Array<{ cert_type?: string; blob?: string }>;
}

export interface KeypairDetails {
  id?: string;
  alias?: string;
  key_alg?: string;
  key_size?: number;
  curve?: string;
  key_status?: string;
  account?: unknown;
  public_key?: string;
}

/** Normalise SM_HOST: scheme https only (an API key never travels in clear), no trailing slash. */
export function parseHost(host: string): { origin: string; prefix: string; display: string } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? host : `https://${host}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: `SM_HOST / --stm-host "${host}" is not a URL (e.g. https://clientauth.one.digicert.com)` });
  }
  if (u.protocol !== 'https:') throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: `SM_HOST / --stm-host must be an https:// URL, got ${u.protocol}//` });
  if (u.username || u.password) throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: 'SM_HOST / --stm-host must not carry credentials; use SM_API_KEY and the client certificate' });
  const prefix = u.pathname.replace(/\/+$/, '');
  return { origin: u.origin, prefix, display: u.host };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class StmClient {
  readonly origin: string;
  readonly display: string;
  private readonly prefix: string;
  private readonly agent: Agent;
  private readonly headers: Record<string, string>;
  private readonly policy: RetryPolicy;
  private readonly log: Logger | undefined;
  /** Requests sent (attempts) and retries made; tests and `debug` logs read these. */
  readonly stats = { attempts: 0, retries: 0 };

  constructor(o: StmClientOptions) {
    const h = parseHost(o.host);
    this.origin = h.origin;
    this.prefix = h.prefix;
    this.display = h.display;
    this.policy = o.retry ?? DEFAULT_RETRY;
    this.log = o.logger;
    // undici keeps TLS sessions per origin (maxCachedSessions, default 100): a reconnect after the
    // server's keep-alive ran out resumes the session instead of a full mTLS handshake.
    this.agent = new Agent({
      connect: { ...o.tls, maxCachedSessions: 100 },
      connections: o.connections ?? 64,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 10 * 60_000,
      pipelining: 1,
    });
    this.headers = {
      accept: 'application/json',
      'user-agent': o.userAgent,
      ...(o.apiKey ? { 'x-api-key': o.apiKey } : {}),
    };
  }

  /** One API call with retries; resolves with the parsed JSON body of a 2xx answer. */
  async call<T>(method: 'GET' | 'POST', path: string, body: unknown, ctx: CallContext): Promise<T> {
    const url = this.prefix + API_BASE + path;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let last = '';
    for (let attempt = 0; ; attempt++) {
      const remaining = ctx.deadline - Date.now();
      if (remaining <= 0) throw this.deadlineError(ctx, last || 'the deadline passed before the first attempt');
      const signal = AbortSignal.timeout(remaining);
      let status: number;
      let retryAfter: string | string[] | undefined;
      let text: string;
      this.stats.attempts++;
      try {
        const res = await this.agent.request({
          origin: this.origin,
          path: url,
          method,
          headers: payload === undefined ? this.headers : { ...this.headers, 'content-type': 'application/json' },
          ...(payload === undefined ? {} : { body: payload }),
          signal,
          headersTimeout: remaining,
          bodyTimeout: remaining,
        });
        status = res.statusCode;
        retryAfter = res.headers['retry-after'];
        text = await res.body.text();
      } catch (e) {
        if (signal.aborted || Date.now() >= ctx.deadline) {
          // the deadline passed while this attempt was waiting for its answer
          const waiting = `no answer to attempt ${attempt + 1}`;
          throw this.deadlineError(ctx, attempt === 0 ? waiting : `${last}; then ${waiting}`, e);
        }
        const tls = classifyTlsError(e, this.display);
        if (tls) throw tls;
        const code = (e as { code?: string }).code ?? (e as Error).name;
        last = `${code}: ${(e as Error).message}`;
        const d = decideRetry({ attempt, retryable: isRetryableError(e), now: Date.now(), deadline: ctx.deadline, policy: this.policy });
        if (!d.retry) {
          if (d.reason === 'deadline') throw this.deadlineError(ctx, last, e);
          throw stmError('SIGNBRIDGE_ERR_STM_UNAVAILABLE', { host: this.display, what: ctx.what, attempts: attempt + 1, last }, { cause: e });
        }
        this.retrying(ctx, attempt, last, d.waitMs);
        await sleep(d.waitMs);
        continue;
      }
      if (status >= 200 && status < 300) {
        try {
          return (text.trim() === '' ? {} : JSON.parse(text)) as T;
        } catch {
          throw stmError('SIGNBRIDGE_ERR_STM_RESPONSE', { host: this.display, what: ctx.what, detail: `HTTP ${status} with a body that is not JSON` });
        }
      }
      const svc = parseErrorBody(text);
      if (RETRY_STATUSES.has(status) || status === 500 && svc.code === undefined && /gateway|timeout|unavailable/i.test(svc.message ?? '')) {
        last = `HTTP ${status}${svc.message ? ` ${svc.message}` : ''}`;
        const d = decideRetry({ attempt, retryable: true, retryAfterMs: parseRetryAfter(retryAfter, Date.now()), now: Date.now(), deadline: ctx.deadline, policy: this.policy });
        if (!d.retry) {
          if (d.reason === 'deadline') throw this.deadlineError(ctx, last);
          throw stmError('SIGNBRIDGE_ERR_STM_UNAVAILABLE', { host: this.display, what: ctx.what, attempts: attempt + 1, last }, { status });
        }
        this.retrying(ctx, attempt, last, d.waitMs);
        await sleep(d.waitMs);
        continue;
      }
      throw classifyRefusal(status, svc, { host: this.display, ...ctx });
    }
  }

  private retrying(ctx: CallContext, attempt: number, last: string, waitMs: number): void {
    this.stats.retries++;
    this.log?.info({ what: ctx.what, attempt: attempt + 1, last, waitMs }, 'STM call failed; retrying');
  }

  private deadlineError(ctx: CallContext, last: string, cause?: unknown): StmError {
    return stmError('SIGNBRIDGE_ERR_STM_DEADLINE', { host: this.display, what: ctx.what, ms: ctx.budgetMs, last }, { cause });
  }

  /** All ACTIVE certificates, page by page (offset + items.length >= total ends it). */
  async listCertificates(deadline: number, budgetMs: number): Promise<CertificateItem[]> {
    const out: CertificateItem[] = [];
    const limit = 100;
    for (let offset = 0, page = 0; page < 1000; page++) {
      const r = await this.call<{ total?: number; items?: CertificateItem[] }>(
        'GET',
        `certificates?limit=${limit}&offset=${offset}&certificate_status=ACTIVE`,
        undefined,
        { what: 'listing certificates', deadline, budgetMs },
      );
      const items = Array.isArray(r.items) ? r.items : [];
      out.push(...items);
      offset += items.length;
      if (items.length === 0 || typeof r.total !== 'number' || offset >= r.total) break;
    }
    return out;
  }

  getKeypair(id: string, deadline: number, budgetMs: number): Promise<KeypairDetails> {
    return this.call<KeypairDetails>('GET', `keypairs/${encodeURIComponent(id)}`, undefined, { what: `reading keypair ${id}`, deadline, budgetMs, keypair: id });
  }

  /** POST keypairs/{id}/sign; when the answer carries only an id, GET signatures/{id} (docs/stm-api.md). */
  async sign(id: string, body: { hash: string; sig_alg: string; account?: unknown }, ctx: CallContext): Promise<Buffer> {
    const r = await this.call<{ id?: string; signature?: string }>('POST', `keypairs/${encodeURIComponent(id)}/sign`, body, ctx);
    let sig = r.signature;
    if (typeof sig !== 'string' && typeof r.id === 'string') {
      const rec = await this.call<{ signature?: string; signing_status?: string }>('GET', `signatures/${encodeURIComponent(r.id)}`, undefined, { ...ctx, what: `reading signature ${r.id}` });
      sig = rec.signature;
    }
    if (typeof sig !== 'string' || sig === '') {
      throw stmError('SIGNBRIDGE_ERR_STM_RESPONSE', { host: this.display, what: ctx.what, detail: 'no "signature" in the answer' });
    }
    return Buffer.from(sig, 'base64');
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
