// The win32-x64 step of `npm run prebuilds` (scripts/prebuilds.mjs): cross-built here with
// mingw-w64 (scripts/build-win32.sh, docs/windows.md "Building"), not by prebuildify:
//   prebuilds/win32-x64/signbridge.node          the addon (named-pipe server, client SIDs)
//   prebuilds/win32-x64/signbridge-pkcs11.dll    the PKCS#11 module (src/native/loader.ts MODULE_FILE)
//   prebuilds/win32-x64/signbridge-ksp.dll       the CNG key storage provider (signtool)
//   prebuilds/win32-x64/signbridge-windows.exe   `signbridge windows install-ksp | certsync` helper
// node-gyp-build picks the addon by directory (platform-arch) and name; the module sits beside it.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Builds into `stage`, then replaces <root>/prebuilds/win32-x64/. Throws a sentence on failure. */
export function buildWin32Prebuilds(root, stage) {
  const out = join(stage, 'build-win32');
  const r = spawnSync('bash', [join(root, 'scripts', 'build-win32.sh'), out], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('the win32-x64 cross-build failed (scripts/build-win32.sh says why; it needs g++-mingw-w64-x86-64)');
  const files = {
    'signbridge.node': join(out, 'signbridge_addon.node'),
    'signbridge-pkcs11.dll': join(out, 'signbridge-pkcs11.dll'),
    // signtool's route (docs/windows-signtool.md): the KSP and the install-ksp / certsync helper
    'signbridge-ksp.dll': join(out, 'signbridge-ksp.dll'),
    'signbridge-windows.exe': join(out, 'signbridge-windows.exe'),
  };
  for (const [name, p] of Object.entries(files)) if (!existsSync(p)) throw new Error(`the win32-x64 cross-build made no ${name} (${p})`);
  const dest = join(root, 'prebuilds', 'win32-x64');
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  for (const [name, p] of Object.entries(files)) copyFileSync(p, join(dest, name));
  return readdirSync(dest).sort().map((f) => `${f} (${statSync(join(dest, f)).size} bytes)`);
}
