// The HTTPS front of the CSC emulator: OAuth 2.0 at <base>/oauth2/*, the CSC API v1 calls at
// <base>/csc/v1/*, fault injection (../faults.ts, signHash being the "sign" call), per-endpoint
// counters and the loopback-only /__admin endpoint (docs/csc-emulator.md).

import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { FaultState, isLoopback, validateFaults } from '../faults.js';
import { BodyTooLargeError, readRawBody, sendJson, ADMIN_BASE, type Stats } from '../server.js';
import { CscError } from './errors.js';
import { OAuthServer, parseTokenBody } from './oauth.js';
import { CscService } from './service.js';

export const CSC_BASE = '/csc/v1';
/** what info's `methods` lists: every CSC call this emulator implements */
export const CSC_METHODS = ['oauth2/token', 'oauth2/revoke', 'credentials/list', 'credentials/info', 'credentials/sendOTP', 'credentials/authorize', 'credentials/extendTransaction', 'signatures/signHash'];
const SIGN_ROUTE = `POST ${CSC_BASE}/signatures/signHash`;

export interface CscStats extends Stats {
  /** hashes signed by signHash (several per call when a client coalesces) */
  hashesSigned: number;
}

function sendError(res: ServerResponse, e: CscError): void {
  const headers: Record<string, string> = {};
  // RFC 6750 §3: a bearer challenge on 401; RFC 6749 §5.2: Basic challenge for invalid_client
  if (e.code === 'invalid_token') headers['www-authenticate'] = `Bearer error="invalid_token", error_description="${e.message.replace(/"/g, "'")}"`;
  if (e.code === 'invalid_client') headers['www-authenticate'] = 'Basic realm="signbridge CSC emulator"';
  sendJson(res, e.status, { error: e.code, error_description: e.message, ...e.extra }, headers);
}

async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const raw = await readRawBody(req);
  const text = raw.toString('utf8');
  if (text.trim() === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new CscError('invalid_request', 'the request body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CscError('invalid_request', 'the request body must be a JSON object');
  return v as Record<string, unknown>;
}

export interface CscServerOptions {
  service: CscService;
  oauth: OAuthServer;
  tls: { key: string; cert: string };
  faults: FaultState;
  logger: Logger;
  /** the base URL clients use (info's oauth2) */
  baseUrl: () => string;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function createCscServer(o: CscServerOptions): { server: Server; stats(): CscStats; resetStats(): void } {
  const { service, oauth, faults, logger } = o;
  let stats: CscStats = { requests: {}, responses: {}, connections: 0, tlsHandshakes: 0, dropped: 0, hashesSigned: 0 };
  const bump = (m: Record<string, number>, k: string): void => {
    m[k] = (m[k] ?? 0) + 1;
  };
  const api = (fn: (b: Record<string, unknown>) => unknown | Promise<unknown>): Handler => async (req, res) => {
    oauth.checkBearer(req.headers);
    const out = await fn(await jsonBody(req));
    if (out === undefined) {
      res.writeHead(204);
      res.end();
    } else sendJson(res, 200, out);
  };
  const form = (fn: (req: IncomingMessage, b: Record<string, string>) => unknown): Handler => async (req, res) => {
    const out = fn(req, parseTokenBody(await readRawBody(req), req.headers['content-type']));
    sendJson(res, 200, out ?? {}, { 'cache-control': 'no-store', pragma: 'no-cache' });
  };

  const token = form((req, b) => oauth.token(req.headers, b));
  const revoke = form((req, b) => void oauth.revoke(req.headers, b));
  const routes: Record<string, Handler> = {
    // CSC API v1.0.4.0 §11.1: info needs no authentication
    [`${CSC_BASE}/info`]: async (req, res) => {
      await jsonBody(req);
      const base = o.baseUrl();
      sendJson(res, 200, {
        specs: '1.0.4.0',
        name: 'signbridge CSC emulator',
        logo: `${base}/logo.png`,
        region: 'US',
        lang: 'en-US',
        description: 'A local Cloud Signature Consortium API v1 service for tests: keys in SoftHSMv2, OTPs delivered to files',
        authType: ['oauth2client'],
        // §8.3.3: the client appends oauth2/token, oauth2/revoke to this base URI
        oauth2: base,
        methods: CSC_METHODS,
      });
    },
    '/oauth2/token': token,
    [`${CSC_BASE}/oauth2/token`]: token,
    '/oauth2/revoke': revoke,
    [`${CSC_BASE}/oauth2/revoke`]: revoke,
    [`${CSC_BASE}/credentials/list`]: api((b) => {
      const max = b.maxResults;
      if (max !== undefined && (!Number.isInteger(max) || (max as number) < 1)) throw new CscError('invalid_request', 'Invalid parameter maxResults: a whole number >= 1');
      const start = b.pageToken === undefined ? 0 : Number(b.pageToken);
      if (!Number.isInteger(start) || start < 0 || (b.pageToken !== undefined && typeof b.pageToken !== 'string')) throw new CscError('invalid_request', 'Invalid parameter pageToken');
      const ids = service.credentials().map((c) => c.id);
      const end = max === undefined ? ids.length : start + (max as number);
      return { credentialIDs: ids.slice(start, end), ...(end < ids.length ? { nextPageToken: String(end) } : {}) };
    }),
    [`${CSC_BASE}/credentials/info`]: api((b) => service.info(b.credentialID, b)),
    [`${CSC_BASE}/credentials/sendOTP`]: api((b) => {
      service.sendOtp(b.credentialID);
      return undefined;
    }),
    [`${CSC_BASE}/credentials/authorize`]: api((b) => service.authorize(b)),
    [`${CSC_BASE}/credentials/extendTransaction`]: api((b) => service.extendTransaction(b)),
    [`${CSC_BASE}/signatures/signHash`]: api(async (b) => ({ signatures: await service.signHash(b) })),
  };

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!isLoopback(req.socket.remoteAddress)) return sendError(res, new CscError('access_denied', 'the admin endpoint answers loopback clients only'));
    const sub = path.slice(ADMIN_BASE.length).replace(/\/$/, '');
    const m = req.method ?? 'GET';
    if (sub === '/faults' && m === 'GET') return sendJson(res, 200, faults.get());
    if (sub === '/stats' && m === 'GET') return sendJson(res, 200, snapshot());
    if (sub === '/settings' && m === 'GET') return sendJson(res, 200, settings());
    if (m !== 'POST') throw new CscError('not_found', `no admin endpoint ${m} ${path}: see docs/csc-emulator.md "Admin endpoint"`);
    const b = await jsonBody(req);
    if (sub === '/faults') {
      try {
        faults.set(validateFaults(b));
      } catch (e) {
        throw new CscError('invalid_request', (e as Error).message);
      }
      logger.info({ faults: faults.get() }, 'faults set');
      return sendJson(res, 200, faults.get());
    }
    if (sub === '/stats/reset') {
      resetStats();
      return sendJson(res, 200, snapshot());
    }
    if (sub === '/settings') {
      const next = { ...settings() };
      for (const [k, v] of Object.entries(b)) {
        if (!(k in next)) throw new CscError('invalid_request', `unknown setting ${k} (known: ${Object.keys(next).join(', ')})`);
        if (k === 'ecdsaFormat') {
          if (v !== 'der' && v !== 'raw') throw new CscError('invalid_request', 'ecdsaFormat: "der" or "raw"');
          next.ecdsaFormat = v;
        } else {
          if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 365 * 86400) throw new CscError('invalid_request', `${k}: whole seconds from 1`);
          next[k as Exclude<keyof typeof next, 'ecdsaFormat'>] = v as number;
        }
      }
      oauth.lifetimes = { tokenTtlS: next.tokenTtlS, refreshTtlS: next.refreshTtlS };
      service.lifetimes = { sadTtlS: next.sadTtlS, otpTtlS: next.otpTtlS };
      service.ecdsaFormat = next.ecdsaFormat;
      return sendJson(res, 200, settings());
    }
    if (sub === '/expire') {
      return sendJson(res, 200, { accessTokens: b.accessTokens === false ? 0 : oauth.expireAccessTokens(), sads: b.sads === false ? 0 : service.expireSads() });
    }
    if (sub === '/credentials') {
      const c = await service.addCredential(CscService.validateNew(b));
      return sendJson(res, 201, { credentialID: c.id, status: c.status });
    }
    const st = /^\/credentials\/([^/]+)\/status$/.exec(sub);
    if (st) {
      const c = await service.setStatus(decodeURIComponent(st[1]!), b.status);
      return sendJson(res, 200, { credentialID: c.id, status: c.status });
    }
    throw new CscError('not_found', `no admin endpoint ${m} ${path}: see docs/csc-emulator.md "Admin endpoint"`);
  }

  function settings(): { tokenTtlS: number; refreshTtlS: number; sadTtlS: number; otpTtlS: number; ecdsaFormat: 'der' | 'raw' } {
    return { ...oauth.lifetimes, ...service.lifetimes, ecdsaFormat: service.ecdsaFormat };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'https://emulator').pathname.replace(/\/$/, '');
    const method = req.method ?? 'GET';
    if (path === ADMIN_BASE || path.startsWith(ADMIN_BASE + '/')) return handleAdmin(req, res, path);

    const started = Date.now();
    const handler: Handler | undefined = Object.hasOwn(routes, path) ? routes[path] : undefined;
    const name = handler ? `${method} ${path}` : 'other';
    bump(stats.requests, name);
    res.on('finish', () => {
      bump(stats.responses, String(res.statusCode));
      logger.info({ method, route: name, status: res.statusCode, ms: Date.now() - started }, 'request');
    });

    const latency = faults.latencyMs();
    if (latency > 0) await new Promise((r) => setTimeout(r, latency));
    const fault = faults.decide(name === SIGN_ROUTE);
    switch (fault.kind) {
      case 'drop':
        stats.dropped++;
        logger.info({ route: name }, 'fault: connection dropped');
        req.socket.destroy();
        return;
      case '429':
        return sendJson(res, 429, { error: 'slow_down', error_description: 'too many requests: retry after Retry-After seconds' }, fault.retryAfterS === null ? {} : { 'retry-after': String(fault.retryAfterS) });
      case '503':
        return sendError(res, new CscError('temporarily_unavailable', 'the service is temporarily unavailable: retry later'));
      case 'none':
        break;
    }
    if (!handler) throw new CscError('not_found', `no endpoint ${method} ${path}: the emulator serves ${CSC_BASE}/{${CSC_METHODS.filter((x) => !x.startsWith('oauth2')).join(',')}} and /oauth2/token`);
    if (method !== 'POST') throw new CscError('method_not_allowed', `${method} is not allowed: every CSC call is a POST`);
    await handler(req, res);
  }

  const server = createServer({ key: o.tls.key, cert: o.tls.cert, minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (e instanceof BodyTooLargeError) {
        res.setHeader('connection', 'close');
        return sendError(res, new CscError('request_too_large', e.message));
      }
      if (e instanceof CscError) {
        if (e.code === 'server_error') logger.error({ err: e.message }, 'HSM error');
        return sendError(res, e);
      }
      logger.error({ err: (e as Error)?.message }, 'unexpected error');
      sendError(res, new CscError('server_error', 'unexpected emulator error: see its log'));
    });
  });
  server.on('connection', () => stats.connections++);
  server.on('secureConnection', () => stats.tlsHandshakes++);
  server.on('tlsClientError', (e) => logger.debug({ err: e.message }, 'TLS handshake failed'));

  function snapshot(): CscStats {
    return { ...structuredClone(stats), hashesSigned: service.hashesSigned };
  }
  function resetStats(): void {
    stats = { requests: {}, responses: {}, connections: 0, tlsHandshakes: 0, dropped: 0, hashesSigned: 0 };
    service.hashesSigned = 0;
  }
  return { server, stats: snapshot, resetStats };
}
