// Writes the golden frames of docs/protocol.md ("Golden frames") to test/fixtures/frames/:
// <name>.bin (one complete frame) + <name>.json (its decoded form), and bad-*.bin (no .json) that
// every decoder must reject. Run: npx vite-node scripts/make-golden-frames.ts
// The frames are deterministic (fixed ids, fixed byte patterns), so re-running changes nothing.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CKA_CERTIFICATE_TYPE, CKA_CLASS, CKA_ID, CKA_KEY_TYPE, CKA_LABEL, CKA_SIGN, CKC_X_509, CKF_EC_F_P,
  CKF_EC_NAMEDCURVE, CKF_EC_UNCOMPRESS, CKF_SIGN, CKF_TOKEN_INITIALIZED, CKF_USER_PIN_INITIALIZED,
  CKF_WRITE_PROTECTED, CKG_MGF1_SHA256, CKK_RSA, CKM_ECDSA, CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_SHA256,
  CKO_CERTIFICATE, CKO_PRIVATE_KEY, CKR_FUNCTION_FAILED, CKR_KEY_HANDLE_INVALID, CKR_PIN_INCORRECT,
} from '../src/core/pkcs11.js';
import {
  CALLS, CKU_USER, HEADER_SIZE, KIND_REPLY, KIND_REQUEST, MAGIC, MAX_FRAME, MIN_LENGTH, Writer, encodeMessage, messageToJson,
  type Message,
} from '../src/ipc/protocol.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'frames');

const u64 = (v: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};
const TRUE = Buffer.from([1]);
const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();
// DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
const DIGESTINFO_SHA256 = Buffer.from('3031300d060960864801650304020105000420', 'hex');
const keyHandle = createHash('sha256').update('golden key handle').digest().subarray(0, 16);
const pattern = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));

const good: Record<string, Message> = {
  'hello-request': {
    call: 'HELLO', kind: 'request', id: 1,
    body: { magic: MAGIC, min_version: 1, max_version: 1, client: 'libsignbridge-pkcs11/0.1.0 pid=4242' },
  },
  'hello-reply': { call: 'HELLO', kind: 'reply', id: 1, body: { rv: 0, version: 1, server: 'signbridge/0.1.0' } },
  'hello-version-mismatch-reply': {
    call: 'HELLO', kind: 'reply', id: 1,
    body: { rv: CKR_FUNCTION_FAILED, message: 'signbridge daemon speaks protocol 1..1, module speaks 2..3: upgrade the daemon' },
  },
  'get-inventory-request': { call: 'GET_INVENTORY', kind: 'request', id: 2, body: {} },
  'inventory-reply': {
    call: 'GET_INVENTORY', kind: 'reply', id: 2,
    body: {
      rv: 0,
      generation: 1n,
      slots: [{
        slot_id: 0,
        slot_description: 'signbridge pkcs11 backend',
        manufacturer: 'signbridge',
        token_label: 'golden',
        token_model: 'signbridge',
        token_serial: '0123456789abcdef',
        token_flags: CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED | CKF_WRITE_PROTECTED,
        mechanisms: [
          { type: BigInt(CKM_RSA_PKCS), min_key_size: 2048, max_key_size: 4096, flags: CKF_SIGN },
          { type: BigInt(CKM_ECDSA), min_key_size: 256, max_key_size: 521, flags: CKF_SIGN | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS },
        ],
        objects: [
          {
            key_handle: keyHandle,
            attributes: [
              { type: BigInt(CKA_CLASS), value: u64(CKO_PRIVATE_KEY) },
              { type: BigInt(CKA_KEY_TYPE), value: u64(CKK_RSA) },
              { type: BigInt(CKA_ID), value: Buffer.from([0x01]) },
              { type: BigInt(CKA_LABEL), value: Buffer.from('rsa key') },
              { type: BigInt(CKA_SIGN), value: TRUE },
            ],
          },
          {
            key_handle: Buffer.alloc(0),
            attributes: [
              { type: BigInt(CKA_CLASS), value: u64(CKO_CERTIFICATE) },
              { type: BigInt(CKA_CERTIFICATE_TYPE), value: u64(CKC_X_509) },
              { type: BigInt(CKA_ID), value: Buffer.from([0x01]) },
              { type: BigInt(CKA_LABEL), value: Buffer.from('rsa key') },
            ],
          },
        ],
      }],
    },
  },
  'sign-request-rsa-pkcs': {
    call: 'SIGN', kind: 'request', id: 3,
    body: { key_handle: keyHandle, mechanism: BigInt(CKM_RSA_PKCS), hash_alg: BigInt(CKM_SHA256), mgf: 0n, salt_len: 0, data: Buffer.concat([DIGESTINFO_SHA256, sha256('hello')]) },
  },
  'sign-request-ecdsa': {
    call: 'SIGN', kind: 'request', id: 4,
    body: { key_handle: keyHandle, mechanism: BigInt(CKM_ECDSA), hash_alg: BigInt(CKM_SHA256), mgf: 0n, salt_len: 0, data: sha256('hello') },
  },
  'sign-request-pss': {
    call: 'SIGN', kind: 'request', id: 5,
    body: { key_handle: keyHandle, mechanism: BigInt(CKM_RSA_PKCS_PSS), hash_alg: BigInt(CKM_SHA256), mgf: BigInt(CKG_MGF1_SHA256), salt_len: 32, data: sha256('hello') },
  },
  'sign-reply': { call: 'SIGN', kind: 'reply', id: 4, body: { rv: 0, signature: pattern(64, 3) } },
  'sign-error-reply': {
    call: 'SIGN', kind: 'reply', id: 3,
    body: { rv: CKR_KEY_HANDLE_INVALID, message: 'no key with that handle: the inventory changed' },
  },
  // protocol.md "LOGIN": slot 0, CKU_USER, a fixture PIN (not a secret of any test).
  'login-request': {
    call: 'LOGIN', kind: 'request', id: 6,
    body: { slot_id: 0, user_type: BigInt(CKU_USER), pin: Buffer.from('golden-pin-0000') },
  },
  'login-reply': { call: 'LOGIN', kind: 'reply', id: 6, body: { rv: 0 } },
  'login-error-reply': {
    call: 'LOGIN', kind: 'reply', id: 6,
    body: { rv: CKR_PIN_INCORRECT, message: 'the PIN does not match the client secret of the signbridge daemon' },
  },
  // protocol.md "AUTHORIZE": a context-specific login with a fixture OTP (not a secret of any test).
  'authorize-request': {
    call: 'AUTHORIZE', kind: 'request', id: 17,
    body: { key_handle: keyHandle, pin: Buffer.from('123456') },
  },
  'authorize-reply': { call: 'AUTHORIZE', kind: 'reply', id: 17, body: { rv: 0, signatures: 16 } },
  'authorize-error-reply': {
    call: 'AUTHORIZE', kind: 'reply', id: 17,
    body: { rv: CKR_PIN_INCORRECT, message: 'the CSC service refused the OTP for doc-rsa (invalid_otp): request a new one with `signbridge otp doc-rsa`' },
  },
};

function raw(call: number, kind: number, id: number, body: Buffer, lengthOverride?: number): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(lengthOverride ?? MIN_LENGTH + body.length, 0);
  h[4] = call;
  h[5] = kind;
  h.writeUInt32LE(id, 6);
  return Buffer.concat([h, body]);
}

const signBody = new Writer();
signBody.bytes(keyHandle).u64(CKM_ECDSA).u64(CKM_SHA256).u64(0).u32(0);
const signPrefix = signBody.frame(CALLS.SIGN.code, KIND_REQUEST, 9).subarray(HEADER_SIZE);

const bad: Record<string, Buffer> = {
  // Framing is consistent, but the SIGN body ends inside `data` (its length says 32, 16 follow).
  'bad-truncated-body': raw(CALLS.SIGN.code, KIND_REQUEST, 9, Buffer.concat([signPrefix, u32(32), pattern(16, 1)])),
  // length = MAX_FRAME - 3: one over the bound; the body is not there (it must not be awaited).
  'bad-length-too-large': raw(CALLS.GET_INVENTORY.code, KIND_REQUEST, 10, Buffer.alloc(0), MAX_FRAME - 3),
  // length 5 < MIN_LENGTH (6): cannot even hold call, kind and id.
  'bad-length-too-small': Buffer.concat([u32(MIN_LENGTH - 1), Buffer.from([CALLS.GET_INVENTORY.code, KIND_REQUEST, 0x0b, 0x00, 0x00])]),
  // call 0x06 is reserved (protocol.md "Call table"; 0x05 is AUTHORIZE since the csc backend).
  'bad-unknown-call': raw(0x06, KIND_REQUEST, 12, Buffer.alloc(0)),
  // LOGIN request whose pin says 64 bytes where 4 follow.
  'bad-login-pin-length': raw(CALLS.LOGIN.code, KIND_REQUEST, 15, Buffer.concat([u32(0), u64(CKU_USER), u32(64), Buffer.from('1234')])),
  // LOGIN reply with rv 0 and a stray byte (the reply has no fields).
  'bad-login-reply-trailing': raw(CALLS.LOGIN.code, KIND_REPLY, 16, Buffer.concat([u32(0), Buffer.from([0x00])])),
  // GET_INVENTORY request has an empty body; one byte is left over.
  'bad-trailing-byte': raw(CALLS.GET_INVENTORY.code, KIND_REQUEST, 13, Buffer.from([0x00])),
  // GET_INVENTORY reply: rv 0, generation 1, slot count 1,048,576 with no bytes left.
  'bad-array-count': raw(CALLS.GET_INVENTORY.code, KIND_REPLY, 14, Buffer.concat([u32(0), u64(1), u32(0x100000)])),
};

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}

mkdirSync(dir, { recursive: true });
for (const f of readdirSync(dir)) if (f.endsWith('.bin') || f.endsWith('.json')) rmSync(join(dir, f));
for (const [name, m] of Object.entries(good)) {
  writeFileSync(join(dir, `${name}.bin`), encodeMessage(m));
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(messageToJson(m), null, 2) + '\n');
}
for (const [name, b] of Object.entries(bad)) writeFileSync(join(dir, `${name}.bin`), b);
console.log(`wrote ${Object.keys(good).length} golden frames and ${Object.keys(bad).length} bad frames to ${dir}`);
