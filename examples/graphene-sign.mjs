#!/usr/bin/env node
// graphene-sign: a Node app that signs through signbridge with graphene-pk11.
//
//   node examples/graphene-sign.mjs --label <key label> [--token <token label>] [--module <path>]
//                                   [--message <text>]
//
// It loads libsignbridge-pkcs11.so, finds the private key by its CKA_LABEL, reads the certificate
// with the same CKA_ID from the token (CKA_VALUE), signs a message with every mechanism in the key's
// CKA_ALLOWED_MECHANISMS (hash-and-sign mechanisms and EdDSA single- and multi-part), verifies each signature
// with node:crypto against the certificate's public key, prints a table, and exits 1 if any
// signature fails, 2 on a usage or set-up error.
//
// The module is found like `signbridge module-path`: --module, else SIGNBRIDGE_MODULE, else the
// local build. The daemon is found like any signbridge consumer: SIGNBRIDGE_SOCKET or the default.
// No PIN: signbridge tokens need no login (docs/design.md "Login model").
// Walk-through: docs/recipes/node.md.
import { constants, createHash, verify, X509Certificate } from 'node:crypto';
import { parseArgs } from 'node:util';
import graphene from 'graphene-pk11';

const { Module, ObjectClass, MechanismEnum, RsaPssParams, RsaMgf, SessionFlag } = graphene;

const CKM_EDDSA = 0x1057; // PKCS#11 3.0; graphene-pk11's MechanismEnum predates it
const USAGE = 'usage: node examples/graphene-sign.mjs --label <key label> [--token <token label>] [--module <path>] [--message <text>]';

function fail(message, code = 2) {
  process.stderr.write(`graphene-sign: ${message}\n`);
  process.exit(code);
}

let args;
try {
  args = parseArgs({
    options: {
      label: { type: 'string' },
      token: { type: 'string' },
      module: { type: 'string' },
      message: { type: 'string', default: 'Hello from a graphene-pk11 app, signed through signbridge.' },
      help: { type: 'boolean', short: 'h' },
    },
  }).values;
} catch (e) {
  fail(`${e.message}\n${USAGE}`);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (!args.label) fail(`--label is required (list the keys with \`signbridge keys\`)\n${USAGE}`);

// --- what each mechanism takes and how node:crypto checks it ----------------------------------------
// RSA_PKCS takes a DigestInfo, RSA_PKCS_PSS and ECDSA a hash; the others the message itself
// (docs/mechanisms.md). Raw mechanisms sign the message's SHA-256 here.
const HASH_LEN = { sha256: 32, sha384: 48, sha512: 64 };
const MGF1 = { sha256: RsaMgf.MGF1_SHA256, sha384: RsaMgf.MGF1_SHA384, sha512: RsaMgf.MGF1_SHA512 };
const CKM_HASH = { sha256: MechanismEnum.SHA256, sha384: MechanismEnum.SHA384, sha512: MechanismEnum.SHA512 };
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex'); // RFC 8017 §9.2

/** How to sign and verify with `type`; undefined for a mechanism this example does not know. */
function recipe(type) {
  const name = type === CKM_EDDSA ? 'EDDSA' : MechanismEnum[type];
  let m;
  if (name === 'RSA_PKCS') return { name, input: 'DigestInfo', hash: 'sha256', raw: (msg) => Buffer.concat([SHA256_DIGEST_INFO, sha('sha256', msg)]), rsa: 'pkcs1' };
  if ((m = /^SHA(256|384|512)_RSA_PKCS$/.exec(name))) return { name, input: 'message', hash: `sha${m[1]}`, rsa: 'pkcs1', multipart: true };
  if (name === 'RSA_PKCS_PSS') return { name, input: 'SHA-256', hash: 'sha256', raw: (msg) => sha('sha256', msg), rsa: 'pss' };
  if ((m = /^SHA(256|384|512)_RSA_PKCS_PSS$/.exec(name))) return { name, input: 'message', hash: `sha${m[1]}`, rsa: 'pss', multipart: true };
  if (name === 'ECDSA') return { name, input: 'SHA-256', hash: 'sha256', raw: (msg) => sha('sha256', msg), ec: true };
  if ((m = /^ECDSA_SHA(256|384|512)$/.exec(name))) return { name, input: 'message', hash: `sha${m[1]}`, ec: true, multipart: true };
  if (name === 'EDDSA') return { name, input: 'message', hash: null, multipart: true }; // the module buffers the message
  return undefined;
}

function sha(alg, data) {
  return createHash(alg).update(data).digest();
}

function algorithm(r) {
  // PSS parameters: MGF1 over the same hash, salt as long as the hash (RFC 8017 §9.1 recommendation)
  if (r.rsa === 'pss') return { name: r.name, params: new RsaPssParams(CKM_HASH[r.hash], MGF1[r.hash], HASH_LEN[r.hash]) };
  return { name: r.name === 'EDDSA' ? CKM_EDDSA : r.name, params: null };
}

function verified(r, publicKey, message, signature) {
  if (r.hash === null) return verify(null, message, publicKey, signature); // Ed25519: the whole message
  if (r.ec) return verify(r.hash, message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature); // raw r‖s
  if (r.rsa === 'pss') {
    return verify(r.hash, message, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_LEN[r.hash] }, signature);
  }
  return verify(r.hash, message, { key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
}

/** CKA_ALLOWED_MECHANISMS: an array of CK_ULONG (8 bytes on 64-bit Linux and macOS). */
function ulongs(buf) {
  const out = [];
  for (let i = 0; i + 8 <= buf.length; i += 8) out.push(Number(buf.readBigUInt64LE(i)));
  return out;
}

// --- the module ---------------------------------------------------------------------------------
let modulePath = args.module;
if (!modulePath) {
  try {
    // lib/native/loader.js is what `signbridge module-path` prints (it honours SIGNBRIDGE_MODULE)
    modulePath = (await import('../lib/native/loader.js')).modulePath();
  } catch (e) {
    fail(`cannot find libsignbridge-pkcs11.so (${e.message}); build signbridge (\`npm run build\`) or pass --module "$(signbridge module-path)"`);
  }
}

let mod;
try {
  mod = Module.load(modulePath, 'signbridge');
  mod.initialize();
} catch (e) {
  fail(`cannot load ${modulePath}: ${e.message}`);
}

let failures = 0;
try {
  // --- find the key by label (on one token, or on every token the daemon serves) ----------------
  let slots;
  try {
    slots = mod.getSlots(true);
  } catch (e) {
    throw new Error(
      `the module cannot reach the signbridge daemon (${e.message}): start it (\`signbridge daemon …\`) ` +
        'and point SIGNBRIDGE_SOCKET at its socket if it is not the default one',
    );
  }
  const found = [];
  const tokens = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    const tokenLabel = slot.getToken().label;
    tokens.push(tokenLabel);
    if (args.token !== undefined && tokenLabel !== args.token) continue;
    const session = slot.open(SessionFlag.SERIAL_SESSION);
    const keys = session.find({ class: ObjectClass.PRIVATE_KEY, label: args.label });
    for (let k = 0; k < keys.length; k++) found.push({ tokenLabel, session, key: keys.items(k) });
  }
  if (found.length === 0) {
    throw new Error(
      `no private key labelled "${args.label}"${args.token !== undefined ? ` on token "${args.token}"` : ''}; ` +
        `tokens served: ${tokens.map((t) => `"${t}"`).join(', ') || 'none'} (see \`signbridge keys\`)`,
    );
  }
  if (found.length > 1) {
    throw new Error(`${found.length} keys are labelled "${args.label}" (tokens ${found.map((f) => `"${f.tokenLabel}"`).join(', ')}): choose one with --token`);
  }
  const { tokenLabel, session, key } = found[0];

  // --- its certificate, from the token ----------------------------------------------------------
  const id = key.getAttribute('id');
  const certs = session.find({ class: ObjectClass.CERTIFICATE, id });
  if (certs.length === 0) throw new Error(`the key "${args.label}" has no certificate with its CKA_ID ${id.toString('hex')} on the token`);
  const cert = new X509Certificate(certs.items(0).getAttribute('value'));
  const message = Buffer.from(args.message, 'utf8');

  console.log(`key "${args.label}" on token "${tokenLabel}" (CKA_ID ${id.toString('hex')})`);
  console.log(`certificate: ${cert.subject.replace(/\n/g, ', ')} (${cert.publicKey.asymmetricKeyType})`);
  console.log(`module: ${modulePath}`);
  console.log('');

  // --- sign with each allowed mechanism, verify each signature -----------------------------------
  const allowed = ulongs(key.getAttribute('allowedMechanisms') ?? Buffer.alloc(0));
  if (allowed.length === 0) {
    // signbridge sets it on every key; without it this example would have nothing to try
    throw new Error(`the key "${args.label}" has no CKA_ALLOWED_MECHANISMS: is ${modulePath} the signbridge module?`);
  }
  const rows = [];
  for (const type of allowed) {
    const r = recipe(type);
    if (!r) {
      rows.push([`0x${type.toString(16)}`, '-', '-', '-', 'skipped: this example does not know the mechanism']);
      continue;
    }
    const runs = [['single', () => session.createSign(algorithm(r), key).once(r.raw ? r.raw(message) : message)]];
    if (r.multipart) {
      runs.push(['multi', () => {
        const signer = session.createSign(algorithm(r), key);
        for (let i = 0; i < message.length; i += 16) signer.update(message.subarray(i, i + 16));
        return signer.final();
      }]);
    }
    for (const [parts, sign] of runs) {
      let result;
      let bytes = '-';
      try {
        const signature = sign();
        bytes = String(signature.length);
        result = verified(r, cert.publicKey, message, signature) ? 'ok' : 'FAIL: does not verify';
      } catch (e) {
        result = `FAIL: ${e.message.split('\n')[0]}`;
      }
      if (result !== 'ok') failures++;
      rows.push([`CKM_${r.name}`, r.input, parts, bytes, result]);
    }
  }
  printTable(['mechanism', 'input', 'parts', 'bytes', 'verified (node:crypto)'], rows);
  console.log('');
  console.log(failures === 0 ? `all ${rows.length} signatures verified` : `${failures} of ${rows.length} failed`);
} catch (e) {
  process.stderr.write(`graphene-sign: ${e.message}\n`);
  failures = -1;
} finally {
  mod.finalize();
}
process.exit(failures === 0 ? 0 : failures < 0 ? 2 : 1);

function printTable(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(head));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(r));
}
