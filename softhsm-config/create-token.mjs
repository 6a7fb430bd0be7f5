#!/usr/bin/env node
// Create a SoftHSMv2 token with code-signing keys for signbridge (thin CLI over lib/softhsm/token-setup.js).
//
//   node softhsm-config/create-token.mjs --state-dir <dir> [--label <token>] [--keys rsa:3072,ec:P-256]
//
// Key specs: rsa:2048 rsa:3072 rsa:4096 ec:P-256 ec:P-384 ed25519. Put an Ed25519 key on a token of
// its own (run this twice with different --label and the same --state-dir): libp11 0.4.12 cannot
// find other keys on a token that also holds an Ed25519 key.
// No PIN is ever printed or passed on a command line: the user PIN is written to <dir>/user-pin (0600).

import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const USAGE = 'usage: node softhsm-config/create-token.mjs --state-dir <dir> [--label <token>] [--keys rsa:3072,ec:P-256]';

function fail(msg, code = 1) {
  process.stderr.write(`create-token: ${msg}\n`);
  process.exit(code);
}

const args = process.argv.slice(2);
const opts = { label: 'signbridge', keys: 'rsa:3072,ec:P-256' };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const value = () => (args[i + 1] !== undefined ? args[++i] : fail(`${a} needs a value\n${USAGE}`, 2));
  if (a === '--state-dir') opts.stateDir = value();
  else if (a === '--label') opts.label = value();
  else if (a === '--keys') opts.keys = value();
  else if (a === '--help' || a === '-h') {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  } else fail(`unknown argument "${a}"\n${USAGE}`, 2);
}
if (!opts.stateDir) fail(`--state-dir is required\n${USAGE}`, 2);

const lib = fileURLToPath(new URL('../lib/softhsm/token-setup.js', import.meta.url));
if (!existsSync(lib)) fail(`${lib} is missing: build signbridge first (\`npm run build\`)`);
const { createToken, parseKeySpec } = await import(pathToFileURL(lib).href);

try {
  const keys = opts.keys.split(',').filter(Boolean).map(parseKeySpec);
  const t = await createToken({ stateDir: opts.stateDir, tokenLabel: opts.label, keys });
  const out = {
    softhsmConf: t.softhsmConf,
    library: t.library,
    tokenLabel: t.tokenLabel,
    tokenSerial: t.tokenSerial,
    pinFile: t.pinFile,
    keys: t.keys.map(({ label, idHex, type, bits, curve, certPath }) => ({ label, idHex, type, bits, curve, certPath })),
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  process.stderr.write(
    `create-token: done. Start a daemon on it with:\n  SOFTHSM2_CONF=${t.softhsmConf} signbridge daemon --backend pkcs11 --pkcs11-library ${t.library} --token-label ${t.tokenLabel} --pin-file ${t.pinFile}\n`,
  );
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
