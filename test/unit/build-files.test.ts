// CMakeLists.txt (cmake-js, development) and binding.gyp (node-gyp, prebuildify) must build the
// module and the addon from the same sources (design.md "Native binaries").
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

/** target name → .cpp sources, from add_library/add_executable calls. */
function cmakeTargets(text: string): Map<string, string[]> {
  const noComments = text.replace(/#[^\n]*/g, '');
  const out = new Map<string, string[]>();
  for (const m of noComments.matchAll(/add_(?:library|executable)\(\s*([\w.-]+)([^)]*)\)/g)) {
    const sources = m[2]!.split(/\s+/).filter((t) => /\.(c|cc|cpp)$/.test(t));
    out.set(m[1]!, sources.sort());
  }
  return out;
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

  it('list the same sources for the PKCS#11 module and the addon', () => {
    for (const target of ['signbridge-pkcs11', 'signbridge_addon']) {
      const c = cmake.get(target);
      const g = gyp.get(target);
      expect(c, `CMakeLists.txt has target ${target}`).toBeDefined();
      expect(g, `binding.gyp has target ${target}`).toBeDefined();
      expect([...(g!.sources ?? [])].sort(), target).toEqual(c);
    }
  });

  it('build the module as a shared library in binding.gyp (prebuildify ships it next to the .node)', () => {
    expect(gyp.get('signbridge-pkcs11')!.type).toBe('shared_library');
  });

  it('compile every .cpp and .c under native/pkcs11 and native/common into the module', async () => {
    const { readdirSync } = await import('node:fs');
    const want = ['common', 'pkcs11'].flatMap((d) =>
      readdirSync(join(root, 'native', d)).filter((f) => /\.(cpp|c)$/.test(f)).map((f) => `native/${d}/${f}`),
    );
    expect(cmake.get('signbridge-pkcs11')).toEqual(want.sort());
  });

  it('the parsers see a difference when there is one', () => {
    const changed = cmakeTargets('add_library(x SHARED a.cpp b.cpp)');
    expect(changed.get('x')).toEqual(['a.cpp', 'b.cpp']);
    expect(gypTargets('{"targets":[{"target_name":"x","sources":["a.cpp"]}]}').get('x')!.sources).not.toEqual(changed.get('x'));
  });
});
