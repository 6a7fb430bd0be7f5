// The HTTPS front of the emulator: TLS that asks for (but does not demand) a client certificate,
// authentication (client certificate chained to the emulator CA and/or x-api-key), fault
// injection, the routes under /signingmanager/api/v1/, the loopback-only /__admin endpoint and
// per-endpoint counters (docs/emulator.md).

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ApiError } from './errors.js';
import { FaultState, isLoopback, validateFaults } from './faults.js';
import { StmService, type ClientInfo } from './service.js';

export type AuthMode = 'mtls' | 'api-key' | 'either';

export const API_BASE = '/signingmanager/api/v1';
export const ADMIN_BASE = '/__admin';
const MAX_BODY = 1024 * 1024;
const MAX_PAGE = 100;

export interface Stats {
  /** API calls per endpoint ("POST /keypairs/{id}/sign"), counted before faults and auth */
  requests: Record<string, number>;
  /** API responses per HTTP status ("200", "429", …) */
  responses: Record<string, number>;
  /** TCP connections accepted */
  connections: number;
  /** TLS handshakes completed (server 'secureConnection'): a client that reuses connections keeps this low */
  tlsHandshakes: number;
  /** connections destroyed by the drop fault */
  dropped: number;
}

interface Route {
  /** template for stats, e.g. "POST /keypairs/{id}/sign" */
  name: string;
  params: string[];
  handler: (ctx: Ctx) => Promise<void> | void;
}

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  params: string[];
  query: URLSearchParams;
  client: ClientInfo;
  body(): Promise<unknown>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendApiError(res: ServerResponse, e: ApiError): void {
  sendJson(res, e.status, { errors: [{ code: e.code, message: e.message }] });
}

/** The DigiCert ONE gateway shape, used for 401/403 on credentials and for 429. */
function sendGatewayError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: { status, message } }, headers);
}

/** Thrown by readRawBody when a body exceeds its limit (the caller answers in its API's error shape). */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request bodies are limited to ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/** The whole request body, at most `limit` bytes (the rest is drained, never buffered). */
export function readRawBody(req: IncomingMessage, limit = MAX_BODY): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new BodyTooLargeError(limit));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size <= limit) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  let raw: Buffer;
  try {
    raw = await readRawBody(req);
  } catch (e) {
    if (e instanceof BodyTooLargeError) throw new ApiError('REQUEST_TOO_LARGE', e.message);
    throw e;
  }
  const text = raw.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError('INVALID_REQUEST', 'the request body is not valid JSON');
  }
}

/** limit/offset query parameters (limit capped at 100, so clients must page). */
function page<T>(items: T[], q: URLSearchParams): { total: number; offset: number; limit: number; items: T[] } {
  const num = (name: string, dflt: number): number => {
    const v = q.get(name);
    if (v === null || v === '') return dflt;
    if (!/^\d+$/.test(v)) throw new ApiError('INVALID_REQUEST', `${name} must be a whole number >= 0`);
    return Number(v);
  };
  const limit = Math.min(num('limit', MAX_PAGE), MAX_PAGE);
  const offset = num('offset', 0);
  return { total: items.length, offset, limit, items: items.slice(offset, offset + limit) };
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export interface EmulatorServerOptions {
  service: StmService;
  tls: { key: string; cert: string; ca: string };
  apiKey: string;
  auth: AuthMode;
  faults: FaultState;
  logger: Logger;
}

export interface EmulatorServer {
  server: Server;
  stats(): Stats;
  resetStats(): void;
}

export function createEmulatorServer(o: EmulatorServerOptions): EmulatorServer {
  const { service, faults, logger } = o;
  const apiKeyDigest = sha256(o.apiKey);
  let stats: Stats = { requests: {}, responses: {}, connections: 0, tlsHandshakes: 0, dropped: 0 };
  const bump = (m: Record<string, number>, k: string): void => {
    m[k] = (m[k] ?? 0) + 1;
  };

  // --- API routes (docs/stm-api.md "Calls") ---
  const routes: Array<{ method: string; re: RegExp; route: Route }> = [];
  const add = (method: string, path: string, handler: Route['handler']): void => {
    const re = new RegExp('^' + path.replace(/\{id\}/g, '([^/]+)') + '/?$');
    routes.push({ method, re, route: { name: `${method} ${path}`, params: [], handler } });
  };

  add('GET', '/keypairs', ({ res, query }) => {
    let ks = service.keypairs();
    const alias = query.get('alias');
    const status = query.get('key_status') ?? query.get('status');
    const account = query.get('account') ?? query.get('account_id');
    if (alias) ks = ks.filter((k) => k.alias === alias);
    if (status) ks = ks.filter((k) => k.key_status === status.toUpperCase() || k.status === status.toUpperCase());
    if (account && account !== service.account) ks = [];
    const p = page(ks, query);
    sendJson(res, 200, { ...p, items: p.items.map((k) => service.keypairJson(k)) });
  });
  add('POST', '/keypairs', async ({ res, body }) => {
    const input = StmService.validateCreate(await body());
    const { keypair, certificate } = await service.createKeypair(input);
    sendJson(res, 201, { ...service.keypairJson(keypair), certificate_id: certificate.id });
  });
  add('GET', '/keypairs/{id}', ({ res, params }) => sendJson(res, 200, service.keypairJson(service.keypair(params[0]!))));
  add('PUT', '/keypairs/{id}', async ({ res, params, body }) => {
    service.keypair(params[0]!); // 404 before looking at the body
    sendJson(res, 200, service.keypairJson(service.updateKeypair(params[0]!, await body())));
  });
  add('POST', '/keypairs/{id}/sign', async ({ res, params, body, client }) => {
    const rec = await service.sign(params[0]!, await body(), client);
    sendJson(res, 200, faults.idOnly() ? { id: rec.id } : { id: rec.id, signature: rec.signature });
  });
  add('GET', '/keypairs/{id}/certificate', ({ res, params }) => {
    const k = service.keypair(params[0]!);
    const c = service.currentCertificate(k.id);
    if (!c) throw new ApiError('CERTIFICATE_NOT_FOUND', `keypair "${k.alias}" has no certificate: issue one with POST keypairs/${k.id}/certificate`);
    sendJson(res, 200, service.certificateJson(c));
  });
  add('POST', '/keypairs/{id}/certificate', async ({ res, params }) => {
    sendJson(res, 201, service.certificateJson(await service.reissueCertificate(params[0]!)));
  });
  add('GET', '/certificates', ({ res, query }) => {
    let cs = service.certificates();
    const st = query.get('certificate_status');
    const alias = query.get('alias');
    const id = query.get('id');
    const kp = query.get('keypair_id');
    if (st) cs = cs.filter((c) => c.certificate_status === st.toUpperCase());
    if (alias) cs = cs.filter((c) => service.keypairs().find((k) => k.id === c.keypair_id)?.alias === alias);
    if (id) cs = cs.filter((c) => c.id === id);
    if (kp) cs = cs.filter((c) => c.keypair_id === kp);
    const p = page(cs, query);
    sendJson(res, 200, { ...p, items: p.items.map((c) => service.certificateJson(c)) });
  });
  add('GET', '/certificates/{id}', ({ res, params }) => {
    const c = service.certificates().find((x) => x.id === params[0]);
    if (!c) throw new ApiError('CERTIFICATE_NOT_FOUND', 'no certificate with this id: GET certificates lists them');
    sendJson(res, 200, service.certificateJson(c));
  });
  add('GET', '/signatures', ({ res, query }) => {
    let ss = service.signatureList();
    const kp = query.get('keypair_id');
    if (kp) ss = ss.filter((s) => s.keypair_id === kp);
    sendJson(res, 200, page(ss, query));
  });
  add('GET', '/signatures/{id}', ({ res, params }) => sendJson(res, 200, service.signature(params[0]!)));

  function match(method: string, path: string): { route?: Route; params: string[]; methodMismatch: boolean } {
    let methodMismatch = false;
    for (const r of routes) {
      const m = r.re.exec(path);
      if (!m) continue;
      if (r.method !== method) {
        methodMismatch = true;
        continue;
      }
      return { route: r.route, params: m.slice(1).map(decodeURIComponent), methodMismatch: false };
    }
    return { params: [], methodMismatch };
  }

  /** Which credential authenticates the request (docs/emulator.md "Authentication"), or why none does. */
  function authenticate(req: IncomingMessage): { via: 'mtls' | 'api-key' } | { reason: string } {
    const sock = req.socket as TLSSocket;
    const hasCert = Object.keys(sock.getPeerCertificate?.() ?? {}).length > 0;
    const certOk = hasCert && sock.authorized === true;
    const keyHeader = req.headers['x-api-key'];
    const key = Array.isArray(keyHeader) ? keyHeader[0] : keyHeader;
    const keyOk = key !== undefined && timingSafeEqual(sha256(key), apiKeyDigest);
    switch (o.auth) {
      case 'mtls':
        if (certOk) return { via: 'mtls' };
        return { reason: hasCert ? 'the client certificate is not issued by this emulator\'s CA' : 'a client certificate is required (mTLS)' };
      case 'api-key':
        if (keyOk) return { via: 'api-key' };
        return { reason: key === undefined ? 'an x-api-key header is required' : 'the API key is not valid' };
      case 'either':
        // a credential that is presented must be valid; at least one must be presented
        if (key !== undefined && !keyOk) return { reason: 'the API key is not valid' };
        if (hasCert && !certOk) return { reason: 'the client certificate is not issued by this emulator\'s CA' };
        if (certOk) return { via: 'mtls' };
        if (keyOk) return { via: 'api-key' };
        return { reason: 'no credentials: present the client certificate (mTLS) or an x-api-key header' };
    }
  }

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!isLoopback(req.socket.remoteAddress)) {
      sendGatewayError(res, 403, 'the admin endpoint answers loopback clients only');
      return;
    }
    const sub = path.slice(ADMIN_BASE.length).replace(/\/$/, '');
    const m = req.method ?? 'GET';
    try {
      if (sub === '/faults' && m === 'GET') return sendJson(res, 200, faults.get());
      if (sub === '/faults' && m === 'POST') {
        let f;
        try {
          f = validateFaults((await readBody(req)) ?? {});
        } catch (e) {
          throw e instanceof ApiError ? e : new ApiError('INVALID_REQUEST', (e as Error).message);
        }
        faults.set(f);
        logger.info({ faults: f }, 'faults set');
        return sendJson(res, 200, faults.get());
      }
      if (sub === '/stats' && m === 'GET') return sendJson(res, 200, stats);
      if (sub === '/stats/reset' && m === 'POST') {
        resetStats();
        return sendJson(res, 200, stats);
      }
      const kp = /^\/keypairs\/([^/]+)\/(release-window|signature-limit)$/.exec(sub);
      if (kp && m === 'POST') {
        const b = ((await readBody(req)) ?? {}) as Record<string, unknown>;
        if (kp[2] === 'release-window') {
          if (typeof b.open !== 'boolean') throw new ApiError('INVALID_REQUEST', 'body must be {"open": true|false}');
          service.setReleaseWindow(decodeURIComponent(kp[1]!), b.open);
        } else {
          if (b.remaining !== null && typeof b.remaining !== 'number') throw new ApiError('INVALID_REQUEST', 'body must be {"remaining": <number>|null}');
          service.setSignatureLimit(decodeURIComponent(kp[1]!), b.remaining as number | null);
        }
        return sendJson(res, 200, { ok: true });
      }
      throw new ApiError('NOT_FOUND', `no admin endpoint ${m} ${path}: see docs/emulator.md "Admin endpoint"`);
    } catch (e) {
      if (e instanceof ApiError) return sendApiError(res, e);
      throw e;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://emulator');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === ADMIN_BASE || path.startsWith(ADMIN_BASE + '/')) return handleAdmin(req, res, path);

    const started = Date.now();
    const sub = path.startsWith(API_BASE + '/') ? path.slice(API_BASE.length) : undefined;
    const found = sub !== undefined ? match(method, sub) : { params: [], methodMismatch: false };
    const name = found.route?.name ?? 'other';
    bump(stats.requests, name);
    res.on('finish', () => {
      bump(stats.responses, String(res.statusCode));
      logger.info({ method, route: name, status: res.statusCode, ms: Date.now() - started, client_type: req.headers['user-agent'] }, 'request');
    });

    const latency = faults.latencyMs();
    if (latency > 0) await new Promise((r) => setTimeout(r, latency));
    const fault = faults.decide(name === 'POST /keypairs/{id}/sign');
    switch (fault.kind) {
      case 'drop':
        stats.dropped++;
        logger.info({ method, route: name }, 'fault: connection dropped');
        req.socket.destroy();
        return;
      case '429':
        return sendGatewayError(res, 429, 'Too many requests: slow down and retry', fault.retryAfterS === null ? {} : { 'retry-after': String(fault.retryAfterS) });
      case '503': {
        // a load balancer's answer: HTML, not JSON (docs/stm-api.md "Errors": a gateway may answer with HTML)
        const html = '<html><head><title>503 Service Temporarily Unavailable</title></head><body><h1>503 Service Temporarily Unavailable</h1></body></html>\n';
        res.writeHead(503, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(html) });
        res.end(html);
        return;
      }
      case 'none':
        break;
    }

    const auth = authenticate(req);
    if ('reason' in auth) return sendGatewayError(res, 401, `Unauthorized: ${auth.reason}`);

    try {
      if (!found.route) {
        if (found.methodMismatch) throw new ApiError('METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
        throw new ApiError('NOT_FOUND', `no endpoint ${method} ${path}: the emulator serves ${API_BASE}/keypairs, certificates and signatures (docs/emulator.md)`);
      }
      const client: ClientInfo = {
        ip: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
        userAgent: req.headers['user-agent'],
        via: auth.via,
      };
      await found.route.handler({ req, res, params: found.params, query: url.searchParams, client, body: () => readBody(req) });
    } catch (e) {
      if (e instanceof ApiError) {
        if (e.code === 'HSM_ERROR') logger.error({ err: e.message }, 'HSM error');
        if (e.code === 'REQUEST_TOO_LARGE') res.setHeader('connection', 'close');
        return sendApiError(res, e);
      }
      throw e;
    }
  }

  const server = createServer(
    {
      key: o.tls.key,
      cert: o.tls.cert,
      ca: o.tls.ca,
      // ask for a client certificate but decide per request (mTLS or API key, docs/emulator.md)
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    (req, res) => {
      handle(req, res).catch((e: unknown) => {
        logger.error({ err: (e as Error)?.message }, 'unexpected error');
        if (!res.headersSent) sendJson(res, 500, { errors: [{ code: 'INTERNAL_ERROR', message: 'unexpected emulator error: see its log' }] });
        else res.destroy();
      });
    },
  );
  server.on('connection', () => stats.connections++);
  server.on('secureConnection', () => stats.tlsHandshakes++);
  server.on('tlsClientError', (e) => logger.debug({ err: e.message }, 'TLS handshake failed'));

  function resetStats(): void {
    stats = { requests: {}, responses: {}, connections: 0, tlsHandshakes: 0, dropped: 0 };
  }
  return { server, stats: () => structuredClone(stats), resetStats };
}

