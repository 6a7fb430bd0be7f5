// The emulator's "HSM": a SoftHSMv2 token of its own in <stateDir>/hsm (its own softhsm2.conf),
// reached through graphene-pk11 / pkcs11js. Keys are generated in the token and every signature
// is made by the token — never in software — so the emulator stands in for STM's HSMs faithfully.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as graphene from 'graphene-pk11';
import pkcs11js from 'pkcs11js';
import type * as P from 'pkcs11js';
import { parseCertificate } from '../core/der.js';
import { CKO_PRIVATE_KEY, CKR_CRYPTOKI_ALREADY_INITIALIZED } from '../core/pkcs11.js';
import { createToken, findSoftHsmLibrary, generateKeyPair, writeSoftHsmConf, type KeySpec } from '../softhsm/token-setup.js';
import { EmulatorError } from './errors.js';

export const HSM_TOKEN_LABEL = 'signbridge-emulator';

export interface SeedKey {
  label: string;
  idHex: string;
  spec: KeySpec;
}

/** pkcs11js signing parameters for one request (api.ts maps sig_alg to these). */
export interface HsmMechanism {
  mechanism: number;
  parameter?: P.RsaPSS;
}

/** One process can hold one SoftHSMv2 configuration (SOFTHSM2_CONF is read at C_Initialize). */
let openInProcess = false;

export class EmulatorHsm {
  private readonly keyHandles = new Map<string, Buffer>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly mod: graphene.Module,
    private readonly signSession: graphene.Session,
    private readonly adminSession: graphene.Session,
  ) {}

  /**
   * First run: create the token with the seed keys (token-setup.createToken) and return their
   * SubjectPublicKeyInfo. Every run: load SoftHSMv2 with the state dir's softhsm2.conf and log in.
   */
  static async open(dir: string, seeds: SeedKey[]): Promise<{ hsm: EmulatorHsm; seeded: Map<string, Buffer> }> {
    if (openInProcess) {
      throw new EmulatorError(
        'SIGNBRIDGE_ERR_EMULATOR_BUSY',
        'an emulator (STM or CSC) already runs in this process (SoftHSMv2 holds one configuration per process): stop it first, or run `signbridge emulator` as a separate process',
      );
    }
    const hsmDir = join(dir, 'hsm');
    const library = findSoftHsmLibrary();
    const seeded = new Map<string, Buffer>();
    if (seeds.length > 0) {
      const token = await createToken({
        stateDir: hsmDir,
        tokenLabel: HSM_TOKEN_LABEL,
        organization: 'signbridge STM emulator',
        library,
        keys: seeds.map((s) => ({ ...s.spec, label: s.label, idHex: s.idHex })),
      });
      for (const k of token.keys) {
        seeded.set(k.idHex, parseCertificate(k.certDer).spkiDer);
        // token-setup's self-signed certificate files would only confuse: the emulator's
        // certificates are the CA-issued ones in keypairs.json
        rmSync(k.certPath, { force: true });
      }
    }
    const conf = writeSoftHsmConf(hsmDir);
    const pinFile = join(hsmDir, 'user-pin');
    if (!existsSync(pinFile)) {
      throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_STATE', `${pinFile} is missing: the emulator state in ${dir} is damaged; remove the directory to start afresh`);
    }
    const pin = readFileSync(pinFile, 'utf8').trim();

    const previous = process.env.SOFTHSM2_CONF;
    process.env.SOFTHSM2_CONF = conf;
    const mod = graphene.Module.load(library, 'SoftHSMv2');
    try {
      // pkcs11js directly: graphene's initialize() hides CKR_CRYPTOKI_ALREADY_INITIALIZED, which here
      // means someone else in this process loaded SoftHSMv2 with their configuration
      mod.lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK }); // signs may run on libuv threads
    } catch (e) {
      mod.close();
      if ((e as { code?: unknown }).code === CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        throw new EmulatorError(
          'SIGNBRIDGE_ERR_EMULATOR_BUSY',
          'SoftHSMv2 is already initialised in this process with another configuration: run the emulator in a process of its own (`signbridge emulator`)',
        );
      }
      throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_STATE', `cannot initialise SoftHSMv2 for ${hsmDir}: ${(e as Error).message}`, { cause: e });
    } finally {
      if (previous === undefined) delete process.env.SOFTHSM2_CONF;
      else process.env.SOFTHSM2_CONF = previous;
    }
    try {
      const slots = mod.getSlots(true);
      let slot: graphene.Slot | undefined;
      for (let i = 0; i < slots.length; i++) {
        const s = slots.items(i);
        if ((s.getToken().flags & graphene.TokenFlag.TOKEN_INITIALIZED) !== 0 && s.getToken().label.trim() === HSM_TOKEN_LABEL) slot = s;
      }
      if (!slot) {
        throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_STATE', `no token "${HSM_TOKEN_LABEL}" in ${hsmDir}: the emulator state is damaged; remove the directory to start afresh`);
      }
      const flags = graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION;
      const adminSession = slot.open(flags);
      adminSession.login(pin, graphene.UserType.USER); // the login state is per token: covers both sessions
      const signSession = slot.open(flags);
      openInProcess = true;
      return { hsm: new EmulatorHsm(mod, signSession, adminSession), seeded };
    } catch (e) {
      try {
        mod.finalize();
      } catch {
        /* not initialised */
      }
      mod.close();
      throw e;
    }
  }

  /** Generates a key pair in the token (synchronous: SoftHSMv2 key generation); returns its SPKI DER. */
  generate(spec: KeySpec, label: string, idHex: string): Buffer {
    this.assertOpen();
    return generateKeyPair(this.adminSession, spec, label, Buffer.from(idHex, 'hex')).spki;
  }

  private keyHandle(idHex: string): Buffer {
    let h = this.keyHandles.get(idHex);
    if (!h) {
      const found = this.adminSession.find({ class: CKO_PRIVATE_KEY, id: Buffer.from(idHex, 'hex') });
      if (found.length !== 1) throw new Error(`the token holds ${found.length} private keys with CKA_ID ${idHex}`);
      h = found.items(0).handle;
      this.keyHandles.set(idHex, h);
    }
    return h;
  }

  /**
   * C_SignInit + C_Sign (async, on libuv's pool) on the signing session. Requests are queued:
   * a PKCS#11 session runs one operation at a time.
   */
  sign(idHex: string, mech: HsmMechanism, data: Buffer): Promise<Buffer> {
    const run = async (): Promise<Buffer> => {
      this.assertOpen();
      const lib = this.signSession.lib;
      const session = this.signSession.handle;
      const m: P.Mechanism = mech.parameter ? { mechanism: mech.mechanism, parameter: mech.parameter } : { mechanism: mech.mechanism };
      lib.C_SignInit(session, m, this.keyHandle(idHex));
      return new Promise<Buffer>((resolve, reject) => {
        // 1024 bytes hold any RSA-4096, ECDSA P-384 or Ed25519 signature; pkcs11js returns the used part
        lib.C_Sign(session, data, Buffer.alloc(1024), (err, sig) => (err ? reject(err) : resolve(Buffer.from(sig))));
      });
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the emulator HSM is closed');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    for (const s of [this.signSession, this.adminSession]) {
      try {
        s.close();
      } catch {
        /* already closed */
      }
    }
    try {
      this.mod.finalize();
    } catch {
      /* already finalised */
    }
    this.mod.close();
    openInProcess = false;
  }
}

export const PSS = { CK_PARAMS_RSA_PSS: pkcs11js.CK_PARAMS_RSA_PSS };
