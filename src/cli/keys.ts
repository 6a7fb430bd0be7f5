import { parseArgs } from 'node:util';
import { sbError } from '../core/errors.js';
import { parseCertificate, OID, decode, readOid } from '../core/der.js';
import { nameToString, pkcs11Uri } from '../core/keys.js';
import { attr, type P11Object, type P11Slot } from '../core/objects.js';
import {
  CKA_CLASS, CKA_EC_PARAMS, CKA_ID, CKA_KEY_TYPE, CKA_LABEL, CKA_MODULUS, CKA_VALUE, CKK_EC, CKK_EC_EDWARDS,
  CKK_RSA, CKO_CERTIFICATE, CKO_PRIVATE_KEY,
} from '../core/pkcs11.js';
import { defaultSocketPath } from '../core/paths.js';
import { DaemonClient } from '../ipc/client.js';
import { modulePath } from '../native/loader.js';
import { recipes, TOOLS, type Tool } from './recipes.js';
import { KEYS_HELP } from './help.js';

export { KEYS_HELP } from './help.js';

export interface KeyInfo {
  slot: number;
  token: string;
  label: string;
  id: string;
  algorithm: string;
  subject: string | null;
  notAfter: string | null;
  uri: string;
}

const CURVE_NAMES: Record<string, string> = { [OID.prime256v1]: 'P-256', [OID.secp384r1]: 'P-384', [OID.secp521r1]: 'P-521' };

function ulong(b: Buffer | undefined): number | undefined {
  return b && b.length === 8 ? Number(b.readBigUInt64LE(0)) : undefined;
}

function algorithmOf(o: P11Object): string {
  const kt = ulong(attr(o, CKA_KEY_TYPE));
  if (kt === CKK_RSA) {
    const m = attr(o, CKA_MODULUS);
    return m ? `RSA-${m.length * 8}` : 'RSA';
  }
  if (kt === CKK_EC) {
    const p = attr(o, CKA_EC_PARAMS);
    let curve = 'unknown curve';
    try {
      if (p) curve = CURVE_NAMES[readOid(decode(p))] ?? readOid(decode(p));
    } catch {
      /* keep "unknown curve" */
    }
    return `EC ${curve}`;
  }
  if (kt === CKK_EC_EDWARDS) return 'Ed25519';
  return `key type ${String(kt)}`;
}

/** The keys of an inventory, as `signbridge keys` shows them. */
export function keysOf(slots: P11Slot[]): KeyInfo[] {
  const out: KeyInfo[] = [];
  for (const s of slots) {
    for (const o of s.objects) {
      if (ulong(attr(o, CKA_CLASS)) !== CKO_PRIVATE_KEY) continue;
      const id = attr(o, CKA_ID) ?? Buffer.alloc(0);
      const label = (attr(o, CKA_LABEL) ?? Buffer.alloc(0)).toString('utf8');
      const cert = s.objects.find((c) => ulong(attr(c, CKA_CLASS)) === CKO_CERTIFICATE && (attr(c, CKA_ID) ?? Buffer.alloc(0)).equals(id));
      let subject: string | null = null;
      let notAfter: string | null = null;
      const der = cert && attr(cert, CKA_VALUE);
      if (der) {
        const c = parseCertificate(der);
        subject = nameToString(c.subjectDer);
        notAfter = c.notAfter.toISOString();
      }
      out.push({
        slot: s.slot_id,
        token: s.token_label,
        label,
        id: id.toString('hex'),
        algorithm: algorithmOf(o),
        subject,
        notAfter,
        uri: pkcs11Uri({ label: s.token_label }, { label, id }),
      });
    }
  }
  return out;
}

export async function runKeys(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean' },
      recipes: { type: 'boolean' },
      tool: { type: 'string', multiple: true },
      socket: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(KEYS_HELP);
    return 0;
  }
  const tools = (values.tool ?? []).flatMap((t) => t.split(','));
  for (const t of tools) {
    if (!(TOOLS as readonly string[]).includes(t))
      throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: `--tool ${t}: not one of ${TOOLS.join(', ')}`, command: 'keys' });
  }
  if (tools.length > 0 && !values.recipes) throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: '--tool goes with --recipes', command: 'keys' });
  // Before connecting: a missing module is worth knowing even when the daemon is down.
  const module = values.recipes ? modulePath() : '';
  const client = await DaemonClient.connect({ socketPath: values.socket ?? defaultSocketPath(), clientName: `signbridge keys pid=${process.pid}` });
  let keys: KeyInfo[];
  try {
    keys = keysOf((await client.inventory()).slots);
  } finally {
    client.close();
  }
  if (values.json) {
    process.stdout.write(JSON.stringify(keys, null, 2) + '\n');
    return 0;
  }
  if (values.recipes && keys.length > 0) {
    process.stdout.write(recipes(keys, tools.length ? (tools as Tool[]) : TOOLS, module));
    return 0;
  }
  if (keys.length === 0) {
    process.stdout.write('The daemon serves no keys: check its log for keys it skipped.\n');
    return 0;
  }
  for (const k of keys) {
    process.stdout.write(
      [
        `${k.label || '(no label)'}  id=${k.id}  ${k.algorithm}  (slot ${k.slot}, token "${k.token}")`,
        `  certificate: ${k.subject ? `${k.subject}, expires ${k.notAfter}` : 'none (SunPKCS11/jarsigner will not list this key)'}`,
        `  uri: ${k.uri}`,
        '',
      ].join('\n'),
    );
  }
  return 0;
}
