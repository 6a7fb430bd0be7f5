// A real STM emulator for tests: HTTPS on a free loopback port, a fresh state dir (its own CA,
// client certificate and SoftHSMv2 token), and undici clients with or without the client
// certificate. SoftHSMv2 holds one configuration per process, so run ONE emulator per test file
// (vitest's forks pool gives each file its own process) and always `await emu.stop()`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { startEmulator, type EmulatorOptions, type RunningEmulator } from '../../src/emulator/index.js';
import { registerEmulatorSecrets } from './secrets.js';

export const API = '/signingmanager/api/v1';

export interface TestEmulator extends RunningEmulator {
  /** mTLS client (the emulator's client certificate; trusts the emulator CA) */
  mtls: Agent;
  /** trusts the emulator CA, presents no client certificate (API-key calls, 401 tests) */
  anonymous: Agent;
  /** a state dir this helper made is removed by stop() unless keepState or SIGNBRIDGE_KEEP_TEST_STATE */
  stop(opts?: { keepState?: boolean }): Promise<void>;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** the body parsed as JSON (undefined when it is not JSON) */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** An undici answer read whole: status, headers, text and the text as JSON when it is JSON. */
export async function apiResponse(r: Dispatcher.ResponseData): Promise<ApiResponse> {
  const text = await r.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, headers: r.headers, text, json };
}

/** Undici agents for an emulator's env (what a daemon would build from env.sh). */
export function emulatorAgents(env: Record<string, string>): { mtls: Agent; anonymous: Agent } {
  const ca = readFileSync(env.SIGNBRIDGE_STM_CA_FILE!);
  return {
    mtls: new Agent({
      connect: { ca, cert: readFileSync(env.SIGNBRIDGE_STM_CLIENT_CERT_PEM!), key: readFileSync(env.SIGNBRIDGE_STM_CLIENT_KEY_PEM!) },
    }),
    anonymous: new Agent({ connect: { ca } }),
  };
}

export async function startTestEmulator(opts: Partial<EmulatorOptions> = {}): Promise<TestEmulator> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'sb-emu-'));
  const emu = await startEmulator({ ...opts, stateDir });
  registerEmulatorSecrets(emu.env); // the run-wide log scan looks for them (test/helpers/secrets.ts)
  const agents = emulatorAgents(emu.env);
  return {
    ...emu,
    ...agents,
    stop: async (o: { keepState?: boolean } = {}) => {
      await Promise.all([agents.mtls.close(), agents.anonymous.close()]);
      await emu.stop();
      if (!opts.stateDir && !o.keepState && !process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** One API call; `path` is relative to the emulator URL (e.g. `${API}/keypairs`). */
export async function call(
  baseUrl: string,
  agent: Agent,
  method: string,
  path: string,
  opts: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { 'user-agent': 'signbridge-tests/0.1 (linux; x64)', ...opts.headers };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const r = await request(baseUrl + path, {
    dispatcher: agent,
    method: method as 'GET',
    headers,
    ...(opts.body !== undefined ? { body: typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) } : {}),
  });
  return apiResponse(r);
}
