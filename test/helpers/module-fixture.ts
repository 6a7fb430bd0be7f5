// The fixture of the module suites: a real daemon (daemon.ts) serving one of the run's SoftHSMv2
// tokens, libsignbridge-pkcs11.so loaded by pkcs11js in this test process, C_Initialize, and a
// serial session on each slot (optionally logged in). close() undoes all of it.
//
//   let m: ModuleFixture;
//   beforeAll(async () => { m = await openModule({ token: 'matrix' }); });
//   afterAll(() => m?.close());
//
// One open fixture per process at a time: dlopen hands every pkcs11js instance the same module,
// so a second C_Initialize would be CKR_CRYPTOKI_ALREADY_INITIALIZED.
import pkcs11js from 'pkcs11js';
import { startTestDaemon, type TestDaemon } from './daemon.js';
import { signbridgeModule } from './module.js';
import { testToken, type TestKey, type TokenName } from './token.js';

export interface ModuleOptions {
  /** the token the daemon serves (default 'softhsm', see token.ts) */
  token?: TokenName;
  /** extra daemon flags, e.g. ['--client-secret-file', file] */
  daemonArgs?: string[];
  /** a daemon the suite already runs (serving `token`) instead of a new one; close() leaves it running */
  daemon?: TestDaemon;
  /** C_Login(CKU_USER, login) on the token's session after opening it */
  login?: string;
}

export interface ModuleFixture {
  daemon: TestDaemon;
  p11: pkcs11js.PKCS11;
  /** the slot of the token under test and a session on it */
  slot: Buffer;
  session: Buffer;
  /** the slot the daemon serves the Ed25519 key from (matrix token; design.md "EdDSA keys") and a session on it */
  edSlot: Buffer | undefined;
  edSession: Buffer | undefined;
  /** C_FindObjectsInit + C_FindObjects + C_FindObjectsFinal (default: the token's session) */
  find(template: pkcs11js.Template, session?: Buffer): Buffer[];
  /** the session of the slot that serves `key` */
  sessionFor(key: TestKey): Buffer;
  /** the private key labelled `label` on its slot's session; throws unless exactly one is visible */
  privateKey(label: string): Buffer;
  /** C_Finalize (if initialized) + C_Initialize, and new slots and sessions (the module forgets every state) */
  reinitialize(): void;
  /** C_Finalize (if initialized), unload the module, stop the daemon it started, restore SIGNBRIDGE_SOCKET */
  close(): Promise<void>;
}

function finalize(p11: pkcs11js.PKCS11): void {
  try {
    p11.C_Finalize();
  } catch (e) {
    // a test may have finalized already; anything else is a real failure
    if ((e as pkcs11js.Pkcs11Error).code !== pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED) throw e;
  }
}

export async function openModule(opts: ModuleOptions = {}): Promise<ModuleFixture> {
  const token = testToken(opts.token);
  const edLabel = `${token.tokenLabel} EdDSA`;
  const daemon = opts.daemon ?? (await startTestDaemon({ ...(opts.token ? { token: opts.token } : {}), ...(opts.daemonArgs ? { extraArgs: opts.daemonArgs } : {}) }));
  const savedSocket = process.env.SIGNBRIDGE_SOCKET;
  process.env.SIGNBRIDGE_SOCKET = daemon.socket; // the module reads it at C_Initialize
  const p11 = new pkcs11js.PKCS11();

  const open = (): void => {
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    const slots = new Map(p11.C_GetSlotList(true).map((s) => [p11.C_GetTokenInfo(s).label.trimEnd(), s]));
    const slot = slots.get(token.tokenLabel);
    if (!slot) throw new Error(`the daemon serves no token "${token.tokenLabel}" (log: ${daemon.logFile})`);
    m.slot = slot;
    m.session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    m.edSlot = slots.get(edLabel);
    m.edSession = m.edSlot && p11.C_OpenSession(m.edSlot, pkcs11js.CKF_SERIAL_SESSION);
    if (opts.login !== undefined) p11.C_Login(m.session, pkcs11js.CKU_USER, opts.login);
  };

  const m: ModuleFixture = {
    daemon,
    p11,
    slot: undefined as never,
    session: undefined as never,
    edSlot: undefined,
    edSession: undefined,
    find(template, session = m.session) {
      p11.C_FindObjectsInit(session, template);
      try {
        return p11.C_FindObjects(session, 100);
      } finally {
        p11.C_FindObjectsFinal(session);
      }
    },
    sessionFor(key) {
      const s = key.type === 'ed25519' ? m.edSession : m.session;
      if (!s) throw new Error(`no session for key "${key.label}"`);
      return s;
    },
    privateKey(label) {
      const key = token.keys.find((k) => k.label === label);
      if (!key) throw new Error(`the test token has no key "${label}"`);
      const found = m.find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: label }], m.sessionFor(key));
      if (found.length !== 1) throw new Error(`expected one private key "${label}", found ${found.length}`);
      return found[0]!;
    },
    reinitialize() {
      finalize(p11);
      open();
    },
    async close() {
      try {
        finalize(p11);
        p11.close();
      } finally {
        if (savedSocket === undefined) delete process.env.SIGNBRIDGE_SOCKET;
        else process.env.SIGNBRIDGE_SOCKET = savedSocket;
        if (!opts.daemon) await daemon.stop();
      }
    },
  };

  try {
    p11.load(signbridgeModule());
    open();
  } catch (e) {
    await m.close().catch(() => undefined); // report the first error
    throw e;
  }
  return m;
}
