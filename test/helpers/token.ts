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

export function testToken(): TestToken {
  let t: TestToken | undefined;
  try {
    t = inject('softhsm');
  } catch {
    /* not inside a vitest worker */
  }
  if (!t && process.env.SIGNBRIDGE_TEST_TOKEN) t = JSON.parse(process.env.SIGNBRIDGE_TEST_TOKEN) as TestToken;
  if (!t) throw new Error('no test token: run the tests through vitest (vitest.config.ts globalSetup creates it)');
  return t;
}

export function testKey(label: 'rsa-3072' | 'ec-p256' | string): TestKey {
  const k = testToken().keys.find((x) => x.label === label);
  if (!k) throw new Error(`the test token has no key "${label}"`);
  return k;
}
