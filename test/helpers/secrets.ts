// Secrets the test run creates, and the run-wide scan for them. Every daemon a test starts copies
// its log into the run's log directory (src/demo/daemon-process.ts testLogDir()); tests that make
// a secret (a token PIN, an emulator's API key or PKCS#12 password, a client secret) register it
// here, and the global teardown (test/setup/global-setup.ts) greps every log of the run for every
// registered secret — raw, hex and base64 — after all tests have finished.
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testLogDir } from '../../src/demo/daemon-process.js';

const REGISTRY = 'secrets.tsv';

/** Adds secrets (name → value) to the run's registry; a no-op outside a test run. */
export function registerTestSecrets(secrets: Record<string, string | undefined>): void {
  const dir = testLogDir();
  if (!dir) return;
  const lines = Object.entries(secrets)
    .filter(([, v]) => typeof v === 'string' && v.length >= 4)
    .map(([k, v]) => `${k}\t${Buffer.from(v!).toString('base64')}\n`)
    .join('');
  if (lines) appendFileSync(join(dir, REGISTRY), lines, { mode: 0o600 });
}

/** The emulator secrets a daemon gets through env.sh. */
export function registerEmulatorSecrets(env: Record<string, string | undefined>): void {
  registerTestSecrets({ 'emulator SM_API_KEY': env.SM_API_KEY, 'emulator SM_CLIENT_CERT_PASSWORD': env.SM_CLIENT_CERT_PASSWORD });
}

export function registeredSecrets(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const f = join(dir, REGISTRY);
  if (!existsSync(f)) return out;
  for (const line of readFileSync(f, 'utf8').split('\n')) {
    const [name, b64] = line.split('\t');
    if (name && b64) out.set(`${name} #${out.size + 1}`, Buffer.from(b64, 'base64').toString());
  }
  return out;
}

export function logFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...logFilesUnder(p));
    else if (e.isFile() && /\.log(\.\d+)?$/.test(e.name)) out.push(p);
  }
  return out;
}

// pino lines whose secret-named field holds anything but the redaction marker
export const UNREDACTED = /"(pin|userPin|password|apiKey|api_key|x-api-key|authorization|secret|clientSecret)"\s*:\s*"(?!\[redacted\])[^"]+"/i;

/** "<file>: <secret name> (<form>)" per hit — never the value — over every log file under `dir`. */
export function scanLogs(dir: string, secrets: Map<string, string>): { files: number; hits: string[] } {
  const files = logFilesUnder(dir);
  const hits: string[] = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const [name, v] of secrets) {
      [v, Buffer.from(v).toString('hex'), Buffer.from(v).toString('base64').replace(/=+$/, '')].forEach((form, i) => {
        if (text.includes(form)) hits.push(`${f}: ${name} (${['raw', 'hex', 'base64'][i]})`);
      });
    }
    text.split('\n').forEach((l, i) => {
      if (UNREDACTED.test(l)) hits.push(`${f}:${i + 1}: an unredacted secret field`);
    });
  }
  return { files: files.length, hits };
}
