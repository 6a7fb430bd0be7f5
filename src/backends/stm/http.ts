// The STM REST client: ONE undici Agent (keep-alive, TLS session reuse, mTLS and/or x-api-key)
// for every call the daemon makes, so a signature rides an already-open, already-authenticated
// connection (docs/stm-backend.md "Connection"). Every call has an absolute deadline; retries
// follow retry.ts and never run past it.
import type { Logger } from 'pino';
import type { Agent } from 'undici';
import { pooledAgent, sendWithRetries, type AttemptRules } from '../http-pool.js';
import type { TlsOptions } from './credentials.js';
import { classifyRefusal, classifyTlsError, parseErrorBody, stmError, StmError } from './errors.js';
import { DEFAULT_RETRY, RETRY_STATUSES, isRetryableError, type RetryPolicy } from './retry.js';

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
    this.agent = pooledAgent({ ...o.tls }, o.connections ?? 64);
    this.headers = {
      accept: 'application/json',
      'user-agent': o.userAgent,
      ...(o.apiKey ? { 'x-api-key': o.apiKey } : {}),
    };
  }

  /** One API call with retries (../http-pool.ts); resolves with the parsed JSON body of a 2xx answer. */
  async call<T>(method: 'GET' | 'POST', path: string, body: unknown, ctx: CallContext): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { status, text } = await sendWithRetries(
      this.agent,
      {
        origin: this.origin,
        path: this.prefix + API_BASE + path,
        method,
        headers: payload === undefined ? this.headers : { ...this.headers, 'content-type': 'application/json' },
        body: payload,
      },
      ctx.deadline,
      this.rules(ctx),
    );
    if (status >= 200 && status < 300) {
      try {
        return (text.trim() === '' ? {} : JSON.parse(text)) as T;
      } catch {
        throw stmError('SIGNBRIDGE_ERR_STM_RESPONSE', { host: this.display, what: ctx.what, detail: `HTTP ${status} with a body that is not JSON` });
      }
    }
    throw classifyRefusal(status, parseErrorBody(text), { host: this.display, ...ctx });
  }

  private rules(ctx: CallContext): AttemptRules {
    return {
      policy: this.policy,
      retryableError: isRetryableError,
      retryableAnswer: (status, text) => {
        const svc = parseErrorBody(text);
        const retryable = RETRY_STATUSES.has(status) || status === 500 && svc.code === undefined && /gateway|timeout|unavailable/i.test(svc.message ?? '');
        return retryable ? `HTTP ${status}${svc.message ? ` ${svc.message}` : ''}` : undefined;
      },
      tlsError: (e) => classifyTlsError(e, this.display),
      noAnswer: (attempt, last) => {
        const waiting = `no answer to attempt ${attempt + 1}`;
        return attempt === 0 ? waiting : `${last}; then ${waiting}`;
      },
      deadlineError: (last, cause) => this.deadlineError(ctx, last, cause),
      unavailableError: (attempts, last, opts) => stmError('SIGNBRIDGE_ERR_STM_UNAVAILABLE', { host: this.display, what: ctx.what, attempts, last }, opts),
      stats: this.stats,
      logger: this.log,
      retryMessage: 'STM call failed; retrying',
      what: ctx.what,
    };
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
