// One signing process for the csc end-to-end tests: loads libsignbridge-pkcs11.so with pkcs11js,
// C_SignInit on the private key labelled $SB_LABEL, the context-specific login with $SB_OTP (when
// set; PKCS#11 v2.40 §5.6), prints "ready", waits for a line on stdin (so parallel signers sign
// together), C_Sign over $SB_MESSAGE, prints one JSON line: {sig} or {step, rv, error}.
import { createInterface } from 'node:readline';
import pkcs11js from 'pkcs11js';

const { SB_MODULE, SB_LABEL, SB_OTP, SB_MESSAGE, SB_MECH } = process.env;
const p11 = new pkcs11js.PKCS11();
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
let step = 'load';
try {
  p11.load(SB_MODULE);
  step = 'C_Initialize';
  p11.C_Initialize();
  const slot = p11.C_GetSlotList(true)[0];
  const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  p11.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: SB_LABEL }]);
  const [key] = p11.C_FindObjects(s, 1);
  p11.C_FindObjectsFinal(s);
  if (!key) throw new Error(`no private key labelled ${SB_LABEL}`);
  const always = p11.C_GetAttributeValue(s, key, [{ type: pkcs11js.CKA_ALWAYS_AUTHENTICATE }])[0].value[0] === 1;
  step = 'C_SignInit';
  p11.C_SignInit(s, { mechanism: SB_MECH === 'ecdsa' ? pkcs11js.CKM_ECDSA_SHA256 : pkcs11js.CKM_SHA256_RSA_PKCS }, key);
  if (SB_OTP !== undefined) {
    step = 'C_Login(CKU_CONTEXT_SPECIFIC)';
    p11.C_Login(s, 2 /* CKU_CONTEXT_SPECIFIC */, SB_OTP);
  }
  out({ ready: true, alwaysAuthenticate: always });
  const rl = createInterface({ input: process.stdin });
  await new Promise((r) => rl.once('line', r));
  rl.close();
  step = 'C_Sign';
  const sig = p11.C_Sign(s, Buffer.from(SB_MESSAGE ?? 'signbridge csc'), Buffer.alloc(1024));
  out({ sig: sig.toString('hex') });
  p11.C_Finalize();
} catch (e) {
  out({ step, rv: e.code ?? null, error: e.message });
}
