// The run's SoftHSMv2 token (created once by test/setup/global-setup.ts).
import { inject } from 'vitest';

export interface TestKey {
  label: string;
  idHex: string;
  type: 'rsa' | 'ec' | 'ed25519';
  bits?: number;
  curve?: string;
  certPath: string;
  certPem: string;
}

export interface TestToken {
  stateDir: string;
  softhsmConf: string;
  library: string;
  tokenLabel: string;
  tokenSerial: string;
  pinFile: string;
  keys: TestKey[];
}

/**
 * 'softhsm' (default): the chain token, RSA-3072 "rsa-3072" id 01 and EC P-256 "ec-p256" id 02.
 * 'matrix': one key of every tested type — rsa-2048 (11), rsa-3072 (12), rsa-4096 (13),
 * ec-p256 (21), ec-p384 (22), ed25519 (31; served from its own slot).
 */
export type TokenName = 'softhsm' | 'matrix';

export function testToken(name: TokenName = 'softhsm'): TestToken {
  let t: TestToken | undefined;
  try {
    t = inject(name);
  } catch {
    /* not inside a vitest worker */
  }
  const env = name === 'softhsm' ? process.env.SIGNBRIDGE_TEST_TOKEN : process.env.SIGNBRIDGE_TEST_MATRIX_TOKEN;
  if (!t && env) t = JSON.parse(env) as TestToken;
  if (!t) throw new Error('no test token: run the tests through vitest (vitest.config.ts globalSetup creates it)');
  return t;
}

export function testKey(label: 'rsa-3072' | 'ec-p256' | string, token: TokenName = 'softhsm'): TestKey {
  const k = testToken(token).keys.find((x) => x.label === label);
  if (!k) throw new Error(`the test token has no key "${label}"`);
  return k;
}
