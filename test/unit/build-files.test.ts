// CMakeLists.txt (cmake-js, development) and binding.gyp (node-gyp, prebuildify) must build the
// module and the addon from the same sources (design.md "Native binaries").
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

/** target (or set() variable) name → .cpp sources, from add_library/add_executable/set calls. */
function cmakeTargets(text: string): Map<string, string[]> {
  const noComments = text.replace(/#[^\n]*/g, '');
  const out = new Map<string, string[]>();
  for (const m of noComments.matchAll(/(?:add_(?:library|executable)|set)\(\s*([\w.-]+)([^)]*)\)/g)) {
    const sources = m[2]!.split(/\s+/).filter((t) => /\.(c|cc|cpp)$/.test(t));
    if (sources.length > 0 || !out.has(m[1]!)) out.set(m[1]!, sources.sort());
  }
  return out;
}

/**
 * The module's sources on one platform: the client library (shared with the Windows KSP), its
 * platform files, the module itself (CMakeLists.txt "signbridge_client").
 */
function moduleSources(cmake: Map<string, string[]>, platform: 'POSIX' | 'WIN'): string[] {
  return [...cmake.get('signbridge_client')!, ...cmake.get(`SB_CLIENT_${platform}_SOURCES`)!, ...cmake.get('signbridge-pkcs11')!].sort();
}

interface GypTarget {
  target_name: string;
  type?: string;
  sources?: string[];
}

/** binding.gyp is a Python literal; ours is also valid JSON once comments are removed. */
function gypTargets(text: string): Map<string, GypTarget> {
  const json = JSON.parse(text.replace(/^\s*#.*$/gm, '')) as { targets: GypTarget[] };
  return new Map(json.targets.map((t) => [t.target_name, t]));
}

describe('build files', () => {
  const cmake = cmakeTargets(readFileSync(join(root, 'CMakeLists.txt'), 'utf8'));
  const gyp = gypTargets(readFileSync(join(root, 'binding.gyp'), 'utf8'));

  it('list the same sources for the PKCS#11 module and the addon (binding.gyp builds the POSIX ones)', () => {
    for (const target of ['signbridge-pkcs11', 'signbridge_addon']) {
      const c = target === 'signbridge-pkcs11' ? moduleSources(cmake, 'POSIX') : cmake.get(target);
      const g = gyp.get(target);
      expect(c, `CMakeLists.txt has target ${target}`).toBeDefined();
      expect(g, `binding.gyp has target ${target}`).toBeDefined();
      expect([...(g!.sources ?? [])].sort(), target).toEqual(c);
    }
  });

  it('build the module as a shared library in binding.gyp (prebuildify ships it next to the .node)', () => {
    expect(gyp.get('signbridge-pkcs11')!.type).toBe('shared_library');
  });

  it('compile every .cpp and .c under native/pkcs11 and native/common into the module on one platform or the other', async () => {
    const { readdirSync } = await import('node:fs');
    const want = ['common', 'pkcs11'].flatMap((d) =>
      readdirSync(join(root, 'native', d)).filter((f) => /\.(cpp|c)$/.test(f)).map((f) => `native/${d}/${f}`),
    );
    const both = new Set([...moduleSources(cmake, 'POSIX'), ...moduleSources(cmake, 'WIN')]);
    expect([...both].sort()).toEqual(want.sort());
    // a platform file in both lists would be compiled where its OS calls do not exist
    const posix = cmake.get('SB_CLIENT_POSIX_SOURCES')!;
    expect(cmake.get('SB_CLIENT_WIN_SOURCES')!.filter((f) => posix.includes(f))).toEqual([]);
  });

  it('the parsers see a difference when there is one', () => {
    const changed = cmakeTargets('add_library(x SHARED a.cpp b.cpp)');
    expect(changed.get('x')).toEqual(['a.cpp', 'b.cpp']);
    expect(gypTargets('{"targets":[{"target_name":"x","sources":["a.cpp"]}]}').get('x')!.sources).not.toEqual(changed.get('x'));
  });
});
