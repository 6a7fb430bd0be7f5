// The token set-up, checked independently of signbridge: osslsigncode signs directly against
// SoftHSMv2 (libsofthsm2.so, not our module) with the keys and certificates token-setup.ts made,
// and the key objects carry the attributes a code-signing key must have.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as graphene from 'graphene-pk11';
import { osslsigncodeSign, osslsigncodeVerify, parseVerify } from '../../src/demo/osslsigncode.js';
import { createToken, parseKeySpec } from '../../src/softhsm/token-setup.js';
import { parseCertificate } from '../../src/core/der.js';
import { testToken } from '../helpers/token.js';
import { unsignedPe } from '../helpers/module.js';
import { describeRun } from '../helpers/run.js';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'sb-softhsm-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('the run token, used directly through libsofthsm2.so', () => {
  for (const label of ['rsa-3072', 'ec-p256']) {
    it(`osslsigncode signs with ${label} and the certificate read from the token; verify passes`, async () => {
      const t = testToken();
      const key = t.keys.find((k) => k.label === label)!;
      const out = join(work, `direct-${label}.exe`);
      const s = await osslsigncodeSign({
        module: t.library,
        tokenLabel: t.tokenLabel,
        keyLabel: label,
        input: unsignedPe(),
        output: out,
        pinFile: t.pinFile, // a real SoftHSMv2 login; -readpass keeps the PIN off the command line
        env: { SOFTHSM2_CONF: t.softhsmConf },
      });
      expect(s.status, describeRun(s)).toBe(0);
      expect(s.command).not.toContain(readFileSync(t.pinFile, 'utf8'));
      const v = await osslsigncodeVerify(out, key.certPath);
      const verdict = parseVerify(v);
      expect(verdict.ok, describeRun(v)).toBe(true);
      expect(v.stdout).toMatch(/^Signature verification: ok$/m);
      expect(verdict.signer).toBe(`/CN=signbridge ${label}/O=signbridge tests`);
      // the same file against the other key's certificate must not verify
      const other = t.keys.find((k) => k.label !== label)!;
      const wrong = parseVerify(await osslsigncodeVerify(out, other.certPath));
      expect(wrong.ok).toBe(false);
    });
  }

  it('the unsigned original does not verify (so the checks above can fail)', async () => {
    const r = await osslsigncodeVerify(unsignedPe(), testToken().keys[0]!.certPath);
    expect(parseVerify(r).ok).toBe(false);
    expect(r.status).not.toBe(0);
  });
});

describe('token objects', () => {
  it('keys are sensitive, non-extractable token keys with a matching certificate object', () => {
    const t = testToken();
    expect(statSync(t.pinFile).mode & 0o777).toBe(0o600);
    const previous = process.env.SOFTHSM2_CONF;
    process.env.SOFTHSM2_CONF = t.softhsmConf;
    const mod = graphene.Module.load(t.library, 'SoftHSMv2');
    mod.initialize();
    try {
      const slots = mod.getSlots(true);
      let slot: graphene.Slot | undefined;
      for (let i = 0; i < slots.length; i++) if (slots.items(i).getToken().label.trim() === t.tokenLabel) slot = slots.items(i);
      expect(slot, 'token present').toBeDefined();
      const session = slot!.open(graphene.SessionFlag.SERIAL_SESSION);
      session.login(readFileSync(t.pinFile, 'utf8'), graphene.UserType.USER);
      for (const k of t.keys) {
        const id = Buffer.from(k.idHex, 'hex');
        const privs = session.find({ class: graphene.ObjectClass.PRIVATE_KEY, id });
        expect(privs.length).toBe(1);
        const a = privs.items(0).getAttribute({ token: null, private: null, sensitive: null, extractable: null, sign: null, label: null, decrypt: null });
        expect(a).toEqual({ token: true, private: true, sensitive: true, extractable: false, sign: true, label: k.label, decrypt: false });
        const certs = session.find({ class: graphene.ObjectClass.CERTIFICATE, id });
        expect(certs.length).toBe(1);
        const c = certs.items(0).getAttribute({ value: null, label: null, subject: null, serial: null, issuer: null });
        const pemDer = new X509Certificate(readFileSync(k.certPath)).raw;
        expect((c.value as Buffer).equals(pemDer)).toBe(true);
        expect(c.label).toBe(k.label);
        const parsed = parseCertificate(pemDer);
        expect((c.subject as Buffer).equals(parsed.subjectDer)).toBe(true);
        expect((c.issuer as Buffer).equals(parsed.issuerDer)).toBe(true);
        expect((c.serial as Buffer).equals(parsed.serialDer)).toBe(true);
        // the certificate certifies the token's own public key
        const pubs = session.find({ class: graphene.ObjectClass.PUBLIC_KEY, id });
        expect(pubs.length).toBe(1);
        const certKey = new X509Certificate(pemDer).publicKey;
        if (k.type === 'rsa') {
          const jwk = certKey.export({ format: 'jwk' });
          expect((pubs.items(0).getAttribute('modulus') as Buffer).equals(Buffer.from(jwk.n!, 'base64url'))).toBe(true);
        } else {
          const point = pubs.items(0).getAttribute('pointEC') as Buffer;
          const jwk = certKey.export({ format: 'jwk' });
          const raw = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
          expect(point.subarray(point.length - raw.length).equals(raw)).toBe(true);
        }
      }
      session.logout();
      session.close();
    } finally {
      mod.finalize();
      mod.close();
      if (previous === undefined) delete process.env.SOFTHSM2_CONF;
      else process.env.SOFTHSM2_CONF = previous;
    }
  });
});

describe('createToken with every supported key type', () => {
  it('RSA 2048/4096, EC P-384 and Ed25519 (on a token of its own) get certificates signed by the token key', async () => {
    const dir = join(work, 'all-types');
    const main = await createToken({ stateDir: dir, tokenLabel: 'all-types', keys: ['rsa:2048', 'rsa:4096', 'ec:P-384'].map(parseKeySpec) });
    // design.md: libp11 0.4.12 breaks on a token mixing Ed25519 with other keys → a second token, same state dir and PIN
    const ed = await createToken({ stateDir: dir, tokenLabel: 'ed25519', keys: [parseKeySpec('ed25519')] });
    expect(ed.pinFile).toBe(main.pinFile);
    expect(ed.softhsmConf).toBe(main.softhsmConf);
    const all = [...main.keys, ...ed.keys];
    expect(all.map((k) => [k.label, k.idHex])).toEqual([
      ['rsa-2048', '01'],
      ['rsa-4096', '02'],
      ['ec-p384', '03'],
      ['ed25519', '01'],
    ]);
    const expected: Record<string, [string, Record<string, unknown>]> = {
      'rsa-2048': ['rsa', { modulusLength: 2048 }],
      'rsa-4096': ['rsa', { modulusLength: 4096 }],
      'ec-p384': ['ec', { namedCurve: 'secp384r1' }],
      ed25519: ['ed25519', {}],
    };
    for (const k of all) {
      const x = new X509Certificate(k.certPem);
      expect(x.verify(x.publicKey), k.label).toBe(true);
      expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.3']);
      const [type, details] = expected[k.label]!;
      expect(x.publicKey.asymmetricKeyType).toBe(type);
      expect(x.publicKey.asymmetricKeyDetails).toMatchObject(details);
      expect(readFileSync(k.certPath, 'utf8')).toBe(k.certPem);
      expect(createPublicKey(k.certPem).equals(x.publicKey)).toBe(true);
    }
    // a tampered certificate no longer verifies: the checks above can fail
    const der = Buffer.from(all[0]!.certDer);
    der[der.length - 10]! ^= 0xff;
    const bad = new X509Certificate(der);
    expect(bad.verify(bad.publicKey)).toBe(false);
  });

  it('refuses a duplicate token label and bad key specs with a message that says what to do', async () => {
    const dir = join(work, 'dup');
    await createToken({ stateDir: dir, tokenLabel: 'dup', keys: [parseKeySpec('ec:P-256')] });
    await expect(createToken({ stateDir: dir, tokenLabel: 'dup', keys: [parseKeySpec('ec:P-256')] })).rejects.toThrow(
      /already exists .*choose another --label/,
    );
    expect(() => parseKeySpec('rsa:1024')).toThrow(/use rsa:2048, rsa:3072/);
    expect(() => parseKeySpec('dsa')).toThrow(/unknown key spec "dsa"/);
  });
});
