// OAuth 2.0 for the CSC emulator: the client credentials grant (RFC 6749 §4.4) and the refresh
// token grant (§6) at <base>/oauth2/token, revocation (RFC 7009) at <base>/oauth2/revoke, and
// bearer tokens (RFC 6750) for every CSC call but info. CSC API v1.0.4.0 §8.3.3: the client
// builds the token URL from info's `oauth2` base URI.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { CscError } from './errors.js';

export interface TokenLifetimes {
  /** access token lifetime, seconds (default 3600, as DigiCert's Document Trust Manager) */
  tokenTtlS: number;
  /** refresh token lifetime, seconds (default 86400) */
  refreshTtlS: number;
}

interface Grant {
  expiresAt: number;
  clientId: string;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
const newToken = (): string => randomBytes(32).toString('base64url');

/** Parses a token request body: application/x-www-form-urlencoded (RFC 6749 §4.4.2) or, leniently, JSON. */
export function parseTokenBody(raw: Buffer, contentType: string | undefined): Record<string, string> {
  const text = raw.toString('utf8');
  const out: Record<string, string> = {};
  if ((contentType ?? '').toLowerCase().startsWith('application/json')) {
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch {
      throw new CscError('invalid_request', 'the token request body is not valid JSON: send application/x-www-form-urlencoded (RFC 6749 §4.4.2)');
    }
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new CscError('invalid_request', 'the token request body must be an object');
    for (const [k, v] of Object.entries(j)) if (typeof v === 'string') out[k] = v;
    return out;
  }
  for (const [k, v] of new URLSearchParams(text)) out[k] = v;
  return out;
}

export class OAuthServer {
  private readonly access = new Map<string, Grant>();
  private readonly refresh = new Map<string, Grant>();
  private readonly secretDigest: Buffer;

  constructor(
    readonly clientId: string,
    clientSecret: string,
    public lifetimes: TokenLifetimes,
    private readonly now: () => number = Date.now,
  ) {
    this.secretDigest = sha256(clientSecret);
  }

  /** Client authentication: HTTP Basic (RFC 6749 §2.3.1) or client_id/client_secret in the body. */
  private authenticateClient(headers: IncomingHttpHeaders, body: Record<string, string>): string {
    let id = body.client_id;
    let secret = body.client_secret;
    const auth = headers.authorization;
    if (auth && /^basic /i.test(auth)) {
      const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new CscError('invalid_client', 'the Basic authorization header is not client_id:client_secret');
      try {
        // RFC 6749 §2.3.1: both parts are form-urlencoded before the Basic encoding
        id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
        secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
      } catch {
        throw new CscError('invalid_client', 'the Basic authorization header is not URL-encoded client_id:client_secret');
      }
    }
    if (!id || secret === undefined) {
      throw new CscError('invalid_client', 'client authentication is required: send client_id and client_secret (Basic or in the body) from SIGNBRIDGE_CSC_CLIENT_ID / SIGNBRIDGE_CSC_CLIENT_SECRET');
    }
    const idOk = timingSafeEqual(sha256(id), sha256(this.clientId));
    const secretOk = timingSafeEqual(sha256(secret), this.secretDigest);
    if (!idOk || !secretOk) throw new CscError('invalid_client', 'unknown client_id or wrong client_secret: use the values of the emulator\'s env.sh');
    return id;
  }

  /** POST oauth2/token → the RFC 6749 §5.1 answer. */
  token(headers: IncomingHttpHeaders, body: Record<string, string>): Record<string, unknown> {
    const clientId = this.authenticateClient(headers, body);
    switch (body.grant_type) {
      case 'client_credentials':
        return this.issue(clientId);
      case 'refresh_token': {
        const t = body.refresh_token;
        const g = t === undefined ? undefined : this.refresh.get(t);
        if (!t) throw new CscError('invalid_request', 'grant_type refresh_token needs refresh_token');
        if (!g || g.clientId !== clientId || g.expiresAt <= this.now()) {
          if (g) this.refresh.delete(t);
          throw new CscError('invalid_grant', 'the refresh token is unknown, expired or revoked: ask for a new token with grant_type client_credentials');
        }
        this.refresh.delete(t); // rotated: each refresh token is good once (RFC 6749 §10.4)
        return this.issue(clientId);
      }
      case undefined:
        throw new CscError('invalid_request', 'grant_type is required: client_credentials or refresh_token');
      default:
        throw new CscError('unsupported_grant_type', `grant_type ${body.grant_type.slice(0, 40)} is not supported: use client_credentials or refresh_token`);
    }
  }

  private issue(clientId: string): Record<string, unknown> {
    const now = this.now();
    const accessToken = newToken();
    const refreshToken = newToken();
    this.access.set(accessToken, { clientId, expiresAt: now + this.lifetimes.tokenTtlS * 1000 });
    this.refresh.set(refreshToken, { clientId, expiresAt: now + this.lifetimes.refreshTtlS * 1000 });
    this.sweep(now);
    return { access_token: accessToken, token_type: 'Bearer', expires_in: this.lifetimes.tokenTtlS, refresh_token: refreshToken };
  }

  /** POST oauth2/revoke (RFC 7009 §2): always 200, known or not. */
  revoke(headers: IncomingHttpHeaders, body: Record<string, string>): void {
    this.authenticateClient(headers, body);
    if (!body.token) throw new CscError('invalid_request', 'token is required');
    this.access.delete(body.token);
    this.refresh.delete(body.token);
  }

  /** Checks "Authorization: Bearer <token>" of an API call (RFC 6750 §2.1). */
  checkBearer(headers: IncomingHttpHeaders): void {
    const auth = headers.authorization;
    const m = auth ? /^bearer\s+(\S+)$/i.exec(auth) : null;
    if (!m) throw new CscError('invalid_token', 'an access token is required: get one from oauth2/token (grant_type client_credentials) and send "Authorization: Bearer <token>"');
    const g = this.access.get(m[1]!);
    if (!g) throw new CscError('invalid_token', 'the access token is not valid: get a new one from oauth2/token');
    if (g.expiresAt <= this.now()) {
      this.access.delete(m[1]!);
      throw new CscError('invalid_token', 'the access token expired: refresh it (grant_type refresh_token) or get a new one from oauth2/token');
    }
  }

  /** Test hook (admin endpoint): every access token issued so far is expired. */
  expireAccessTokens(): number {
    const n = this.access.size;
    for (const g of this.access.values()) g.expiresAt = 0;
    return n;
  }

  private sweep(now: number): void {
    for (const m of [this.access, this.refresh]) for (const [k, g] of m) if (g.expiresAt <= now) m.delete(k);
  }
}
