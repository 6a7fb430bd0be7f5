// The built module exports exactly the 68 PKCS#11 v2.40 entry points plus the two PKCS#11 3.0 interface calls
// and nothing else (docs/design.md "Conventions", kmsp11 binary_test), and depends on no Node/napi symbols.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const modulePath = join(root, 'build', 'Release', 'libsignbridge-pkcs11.so');

function nm(args: string[]): string[] {
  const r = spawnSync('nm', [...args, modulePath], { encoding: 'utf8' });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT')
    throw new Error('nm is missing: run as root `apt-get install -y binutils`');
  if (r.status !== 0) throw new Error(`nm failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

/** The v2.40 function list, read from the header the module is compiled against. */
function specFunctions(): string[] {
  const req = createRequire(import.meta.url);
  const header = join(dirname(req.resolve('pkcs11js/package.json')), 'includes', 'pkcs11', 'pkcs11f.h');
  return [...readFileSync(header, 'utf8').matchAll(/CK_PKCS11_FUNCTION_INFO\((C_\w+)\)/g)].map((m) => m[1]!);
}

describe('libsignbridge-pkcs11.so exports', () => {
  it('is built', () => {
    expect(existsSync(modulePath), `${modulePath} is missing: run \`npx cmake-js compile --out build\``).toBe(true);
  });

  it('exports exactly the C_* functions of PKCS#11 v2.40 and C_GetInterfaceList / C_GetInterface of 3.0', () => {
    const v240 = specFunctions();
    expect(v240).toHaveLength(68);
    // 3.0 §5.4: a 3.0 loader looks these two up with dlsym; the other 3.0 entries are in the 3.0 list only.
    const want = [...v240, 'C_GetInterfaceList', 'C_GetInterface'];
    const defined = nm(['-D', '--defined-only']).map((l) => l.trim().split(/\s+/).pop()!);
    expect(defined.sort()).toEqual([...want].sort());
  });

  it('needs no Node/napi or other undefined C++ runtime symbols', () => {
    const undef = nm(['-D', '--undefined-only']).map((l) => l.trim().split(/\s+/).pop()!);
    expect(undef.filter((s) => /napi|node|uv_|v8/i.test(s))).toEqual([]);
    // libstdc++ is linked statically: no GLIBCXX/CXXABI version references.
    expect(undef.filter((s) => /GLIBCXX|CXXABI/.test(s))).toEqual([]);
  });
});
