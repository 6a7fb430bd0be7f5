// Where the PKCS#11 binding (graphene-pk11 over pkcs11js) comes from (README "Stack"):
//   1. the npm-installed optional dependencies (built from source by npm when a compiler exists;
//      a development checkout always has them);
//   2. else the copy the package ships in prebuilds/<platform>-<arch>/node_modules/: graphene-pk11,
//      tslib and pkcs11js with pkcs11js's own sources prebuilt (scripts/prebuild-pkcs11js.mjs).
// Each pair is taken from one place, so graphene always drives the pkcs11js beside it. Loaded on
// first use: the stm backend and the CLI never need it.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as Graphene from 'graphene-pk11';
import type * as Pkcs11js from 'pkcs11js';
import { sbError } from '../core/errors.js';
import { packageRoot } from './loader.js';

export type GrapheneApi = typeof Graphene;
export type Pkcs11jsApi = typeof Pkcs11js;
export interface Pkcs11Binding {
  graphene: GrapheneApi;
  pkcs11js: Pkcs11jsApi;
  /** where it was loaded from: 'dependency' or the prebuilt node_modules directory */
  source: string;
}

/** The shipped copy for this platform (it may be absent). */
export function prebuiltBindingDir(root = packageRoot()): string {
  return join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'node_modules');
}

function loadFrom(req: NodeJS.Require): Omit<Pkcs11Binding, 'source'> {
  // pkcs11js first: its require() dlopens the native binary, the part that can be missing
  const pkcs11js = req('pkcs11js') as Pkcs11jsApi;
  req.resolve('graphene-pk11'); // present beside it (a missing one is this copy's failure), but …
  let graphene: GrapheneApi | undefined;
  return {
    pkcs11js,
    // … loaded on first use: the daemon's pkcs11 backend calls pkcs11js alone, and graphene's many
    // small files cost ≈ 60 ms of its start-up (docs/performance.md "Start-up").
    get graphene(): GrapheneApi {
      return (graphene ??= req('graphene-pk11') as GrapheneApi);
    },
  };
}

let cached: Pkcs11Binding | undefined;

/** graphene-pk11 and pkcs11js; throws SIGNBRIDGE_ERR_PKCS11_BINDING saying what was tried and the fix. */
export function pkcs11Binding(root = packageRoot()): Pkcs11Binding {
  if (cached) return cached;
  const failures: string[] = [];
  try {
    cached = Object.assign(loadFrom(createRequire(join(root, 'package.json'))), { source: 'dependency' });
    return cached;
  } catch (e) {
    failures.push(`the pkcs11js dependency (${firstLine(e)})`);
  }
  const dir = prebuiltBindingDir(root);
  if (existsSync(join(dir, 'pkcs11js', 'package.json'))) {
    try {
      // resolves pkcs11js and graphene-pk11 from dir, and graphene's own require('pkcs11js') too
      cached = Object.assign(loadFrom(createRequire(join(dir, 'index.js'))), { source: dir });
      return cached;
    } catch (e) {
      failures.push(`${dir} (${firstLine(e)})`);
    }
  } else {
    failures.push(`${dir} (absent)`);
  }
  throw sbError('SIGNBRIDGE_ERR_PKCS11_BINDING', { tried: failures.join(', '), reason: 'neither copy loads' });
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}
