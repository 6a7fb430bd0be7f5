// The stage both Wine suites sign on (docs/windows.md "Tests under Wine"): the cross-built
// binaries in a package tree, a fresh Wine prefix, Windows Node, the STM emulator running natively,
// and the real daemon under Windows Node on a named pipe with the stm backend.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestEmulator, type TestEmulator } from './emulator.js';
import {
  buildWindowsBinaries,
  makePrefix,
  startWineDaemon,
  until,
  windowsNode,
  windowsPackageTree,
  winPath,
  type WineDaemon,
} from './wine.js';

export interface WineStage {
  work: string;
  bin: Awaited<ReturnType<typeof buildWindowsBinaries>>;
  wine: Awaited<ReturnType<typeof makePrefix>>;
  nodeExe: string;
  tree: ReturnType<typeof windowsPackageTree>;
  emu: TestEmulator;
  daemon: WineDaemon;
  /** Daemon, emulator, prefix, package tree and work directory, in that order. */
  stop(): Promise<void>;
}

/** The stm backend's settings for a daemon under Wine: the emulator's files by their Z:\ names. */
export function stmDaemonEnv(emu: TestEmulator): NodeJS.ProcessEnv {
  return {
    SM_HOST: emu.env.SM_HOST,
    SM_CLIENT_CERT_FILE: winPath(emu.env.SM_CLIENT_CERT_FILE!),
    SM_CLIENT_CERT_PASSWORD: emu.env.SM_CLIENT_CERT_PASSWORD,
    SIGNBRIDGE_STM_CA_FILE: winPath(emu.env.SIGNBRIDGE_STM_CA_FILE!),
  };
}

/**
 * Builds and starts the stage; `beforeDaemon` runs once everything but the daemon is up (build a
 * harness, add keys the daemon must list at start). On failure, whatever was started is stopped.
 */
export async function startWineStage(o: {
  tag: string;
  pipe: string;
  daemonArgs?: string[];
  beforeDaemon?: (s: Omit<WineStage, 'daemon' | 'stop'>) => Promise<void>;
}): Promise<WineStage> {
  const work = mkdtempSync(join(tmpdir(), `sb-wine-${o.tag}-`));
  const parts: Partial<WineStage> = { work };
  const stop = async (): Promise<void> => {
    await parts.daemon?.stop();
    await parts.emu?.stop();
    await parts.wine?.remove();
    parts.tree?.remove();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    // independent steps side by side: the cross-build is the long one
    const [bin, wine, nodeExe] = await Promise.all([buildWindowsBinaries(), makePrefix(), windowsNode()]);
    Object.assign(parts, { bin, wine, nodeExe, tree: windowsPackageTree(bin) });
    parts.emu = await startTestEmulator();
    const ready = parts as Omit<WineStage, 'daemon' | 'stop'>;
    await o.beforeDaemon?.(ready);
    const args = ['--backend', 'stm', '--socket', o.pipe, ...(o.daemonArgs ?? [])];
    const daemon = startWineDaemon(wine.env, nodeExe, ready.tree.cli, args, stmDaemonEnv(ready.emu), join(work, 'daemon.log'));
    parts.daemon = daemon;
    const up = await until(() => daemon.log().includes('"msg":"listening"') || daemon.child.exitCode !== null, 90_000);
    if (!up || daemon.child.exitCode !== null) throw new Error(`the daemon under Wine did not start\n${daemon.log()}`);
    return { ...ready, daemon, stop };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}
