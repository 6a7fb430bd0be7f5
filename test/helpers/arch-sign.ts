// Runs test/native/arch_sign.c (one signature through the module, any architecture) and checks
// what it printed with node:crypto: the verifier knows only the certificate the test trusts.
import { verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { describeRun, runCommand, type RunResult } from './run.js';

export interface ArchSign {
  /** uname -m as the harness saw it (aarch64 under qemu-user) */
  arch: string;
  /** the certificate the module served for the key */
  cert: X509Certificate;
  message: Buffer;
  signature: Buffer;
  run: RunResult;
}

/** `runner` is an argv prefix (e.g. qemu-aarch64 -L <sysroot>), empty for a native harness. */
export async function archSign(runner: string[], exe: string, module: string, label: string, kind: 'ec' | 'rsa', env: NodeJS.ProcessEnv): Promise<ArchSign> {
  const [cmd, ...pre] = [...runner, exe];
  const run = await runCommand(cmd!, [...pre, module, label, kind], { env: { ...process.env, ...env }, timeoutMs: 120_000 });
  if (run.status !== 0) throw new Error(`arch_sign failed:\n${describeRun(run)}`);
  const line = (tag: string) => run.stdout.split('\n').find((l) => l.startsWith(`${tag} `))?.split(' ').slice(1) ?? [];
  const [arch] = line('arch');
  const [certHex] = line('cert');
  const [msgHex, sigHex] = line('sig');
  if (!arch || !certHex || !msgHex || !sigHex) throw new Error(`arch_sign printed no arch/cert/sig line:\n${describeRun(run)}`);
  return { arch, cert: new X509Certificate(Buffer.from(certHex, 'hex')), message: Buffer.from(msgHex, 'hex'), signature: Buffer.from(sigHex, 'hex'), run };
}

/** ECDSA (raw r||s, as PKCS#11 returns it) or RSASSA-PKCS1-v1_5, SHA-256, against `cert`'s key. */
export function verifies(s: ArchSign, cert: X509Certificate, kind: 'ec' | 'rsa'): boolean {
  const key = kind === 'ec' ? { key: cert.publicKey, dsaEncoding: 'ieee-p1363' as const } : cert.publicKey;
  return cryptoVerify('sha256', s.message, key, s.signature);
}
