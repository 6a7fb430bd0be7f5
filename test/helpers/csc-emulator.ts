// A real CSC emulator for tests: HTTPS on a free loopback port, a fresh state dir (its own CA,
// OAuth client and SoftHSMv2 token), an undici agent that trusts its CA, and small clients for
// the OAuth token, the CSC calls and the admin endpoint. SoftHSMv2 holds one configuration per
// process: ONE emulator per test file, and always `await emu.stop()`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startCscEmulator, type CscEmulatorOptions, type RunningCscEmulator } from '../../src/emulator/csc/index.js';
import { apiResponse, type ApiResponse } from './emulator.js';
import { registerTestSecrets } from './secrets.js';

export interface TestCscEmulator extends RunningCscEmulator {
  /** trusts the emulator CA */
  agent: Agent;
  /** a fresh access token (client credentials grant) */
  token(): Promise<string>;
  /** POST <url><path> with a JSON body and, unless `token` is null, a bearer token */
  csc(path: string, body?: unknown, token?: string | null): Promise<ApiResponse>;
  /** POST (or GET without a body) <url>/__admin<path> */
  admin(path: string, body?: unknown): Promise<ApiResponse>;
  /** sendOTP, read <stateDir>/otp/<id>, authorize → the SAD */
  authorize(credentialID: string, numSignatures: number, extra?: Record<string, unknown>): Promise<string>;
  stop(opts?: { keepState?: boolean }): Promise<void>;
}

export async function post(
  agent: Agent,
  url: string,
  body: string | undefined,
  headers: Record<string, string> = {},
  method: 'POST' | 'GET' = 'POST',
): Promise<ApiResponse> {
  const r = await request(url, { dispatcher: agent, method, headers, ...(body !== undefined ? { body } : {}) });
  return apiResponse(r);
}

export async function startTestCscEmulator(opts: Partial<CscEmulatorOptions> = {}): Promise<TestCscEmulator> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'sb-csc-'));
  const emu = await startCscEmulator({ ...opts, stateDir });
  registerTestSecrets({ 'CSC emulator client secret': emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET });
  const agent = new Agent({ connect: { ca: readFileSync(emu.env.SIGNBRIDGE_CSC_CA_FILE!) } });
  const json = { 'content-type': 'application/json' };
  const t: TestCscEmulator = {
    ...emu,
    agent,
    token: async () => {
      const r = await post(
        agent,
        `${emu.url}/oauth2/token`,
        new URLSearchParams({ grant_type: 'client_credentials', client_id: emu.env.SIGNBRIDGE_CSC_CLIENT_ID!, client_secret: emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET! }).toString(),
        { 'content-type': 'application/x-www-form-urlencoded' },
      );
      if (r.status !== 200) throw new Error(`oauth2/token answered ${r.status}: ${r.text}`);
      return r.json.access_token as string;
    },
    csc: async (path, body = {}, token) => {
      const bearer = token === undefined ? await t.token() : token;
      return post(agent, `${emu.url}${path}`, JSON.stringify(body), { ...json, ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }) });
    },
    admin: (path, body) => post(agent, `${emu.adminUrl}${path}`, body === undefined ? undefined : JSON.stringify(body), json, body === undefined ? 'GET' : 'POST'),
    authorize: async (credentialID, numSignatures, extra = {}) => {
      const s = await t.csc('/csc/v1/credentials/sendOTP', { credentialID });
      if (s.status !== 204) throw new Error(`sendOTP answered ${s.status}: ${s.text}`);
      const OTP = readFileSync(join(emu.stateDir, 'otp', credentialID), 'utf8').trim();
      const r = await t.csc('/csc/v1/credentials/authorize', { credentialID, numSignatures, OTP, ...extra });
      if (r.status !== 200) throw new Error(`authorize answered ${r.status}: ${r.text}`);
      return r.json.SAD as string;
    },
    stop: async (o: { keepState?: boolean } = {}) => {
      await agent.close();
      await emu.stop();
      if (!opts.stateDir && !o.keepState && !process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return t;
}
