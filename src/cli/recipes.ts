// `signbridge keys --recipes`: for each key a daemon serves, the exact command line of each signing
// tool, with this machine's module path and the key's URI or alias — the README's recipes filled in
// (test/e2e/keys-recipes.test.ts runs what this prints and verifies the signatures).
import { pkcs11Uri } from '../core/keys.js';
import type { KeyInfo } from './keys.js';

export const TOOLS = ['osslsigncode', 'jarsigner', 'openssl', 'pkcs11-tool', 'ssh'] as const;
export type Tool = (typeof TOOLS)[number];

/** A word for sh: as is when it is plain, else in single quotes. */
export function shq(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

type Family = 'rsa' | 'ec' | 'ed25519' | 'other';
function family(k: KeyInfo): Family {
  if (k.algorithm.startsWith('RSA')) return 'rsa';
  if (k.algorithm.startsWith('EC ')) return 'ec';
  if (k.algorithm === 'Ed25519') return 'ed25519';
  return 'other';
}

function uri(k: KeyInfo, type: 'private' | 'cert'): string {
  // The README's form: token and label; the id only when there is no label to name the key by.
  return pkcs11Uri({ label: k.token }, k.label ? { label: k.label } : { id: Buffer.from(k.id, 'hex') }, type);
}

/** Lines for one key and one tool; a '#' line says why a tool cannot use the key. */
export function recipe(tool: Tool, k: KeyInfo, modulePath: string): string[] {
  const f = family(k);
  const m = shq(modulePath);
  switch (tool) {
    case 'osslsigncode':
      if (!k.subject) return [`# osslsigncode: ${k.label} has no certificate on the token; give one with -certs <file>`];
      if (f === 'ed25519') return ['# osslsigncode: Authenticode has no Ed25519 signatures'];
      return [
        `osslsigncode sign -pkcs11module ${m} \\`,
        `  -pkcs11cert ${shq(uri(k, 'cert'))} \\`,
        `  -key ${shq(uri(k, 'private'))} \\`,
        `  -h sha256 -in app.exe -out app-signed.exe`,
      ];
    case 'jarsigner': {
      if (!k.subject) return [`# jarsigner: SunPKCS11 lists only keys with a certificate; ${k.label} has none`];
      if (f === 'ed25519') return ['# jarsigner: SunPKCS11 in JDK 17 has no EdDSA'];
      const sigalg = f === 'ec' ? ' -sigalg SHA256withECDSA' : '';
      return [
        `printf 'name=signbridge\\nlibrary=%s\\nslotListIndex=${k.slot}\\n' ${m} > signbridge-java.cfg`,
        'jarsigner -keystore NONE -storetype PKCS11 -providerClass sun.security.pkcs11.SunPKCS11 \\',
        `  -providerArg signbridge-java.cfg -storepass anything${sigalg} app.jar ${shq(k.label)}`,
      ];
    }
    case 'openssl':
      if (f === 'ed25519') return ["# openssl: libp11's engine cannot find keys on a token holding an Ed25519 key (docs/consumers.md)"];
      return [
        `PKCS11_MODULE_PATH=${m} openssl dgst -sha256 -engine pkcs11 -keyform engine \\`,
        `  -sign ${shq(uri(k, 'private'))} -out file.sig file`,
      ];
    case 'ssh': {
      // docs/recipes/openssh.md: the agent loads the module (-P allows it) and signs with the key
      // whose public half ssh-keygen -D prints with the label as comment.
      if (f === 'ed25519') return ['# ssh: OpenSSH 9.2 skips PKCS#11 Ed25519 keys (docs/recipes/openssh.md)'];
      if (!k.label) return ['# ssh: the key has no label to pick its line of ssh-keygen -D by'];
      const pub = shq(`${k.label}.pub`);
      return [
        `ssh-keygen -D ${m} | awk -v l=${shq(k.label)} 'substr($0, length($0) - length(l)) == " " l' > ${pub}`,
        `eval "$(ssh-agent -s -P ${m})"`,
        `printf '#!/bin/sh\\necho any\\n' > askpass && chmod 700 askpass`,
        `SSH_ASKPASS="$PWD/askpass" SSH_ASKPASS_REQUIRE=force ssh-add -s ${m}`,
        `ssh-keygen -Y sign -f ${pub} -n file file        # writes file.sig`,
        'ssh-agent -k',
      ];
    }
    case 'pkcs11-tool': {
      const mech = f === 'rsa' ? 'SHA256-RSA-PKCS' : f === 'ec' ? 'ECDSA-SHA256' : 'EDDSA';
      return [`pkcs11-tool --module ${m} --slot ${k.slot} --sign --id ${k.id} -m ${mech} --input-file file --output-file file.sig`];
    }
  }
}

/** The whole `--recipes` output: one block per key, a '#' line naming the key first. */
export function recipes(keys: KeyInfo[], tools: readonly Tool[], modulePath: string): string {
  const out: string[] = [];
  for (const k of keys) {
    out.push(`# ${k.label || '(no label)'}: ${k.algorithm}, id ${k.id}, token "${k.token}" (slot ${k.slot})`);
    for (const t of tools) out.push(...recipe(t, k, modulePath));
    out.push('');
  }
  return out.join('\n');
}
