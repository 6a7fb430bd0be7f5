// One loaded+initialized PKCS#11 library per path and process, shared by every backend using it:
// a second C_Initialize/C_Finalize pair on the same library would tear down the sessions of the
// first (PKCS#11 v2.40 §5.4: C_Finalize ends the whole application's use of the library).
import type * as graphene from 'graphene-pk11';
import { pkcs11Binding } from '../../native/pkcs11js.js';
import { isPkcs11Error } from './token-errors.js';

const CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191;

const libraries = new Map<string, { mod: graphene.Module; users: number }>();

/** Load and C_Initialize `library`, or take another user's reference to it. Throws the load/init error. */
export function acquireLibrary(library: string): graphene.Module {
  const have = libraries.get(library);
  if (have) {
    have.users++;
    return have.mod;
  }
  const { graphene: g, pkcs11js } = pkcs11Binding();
  const mod = g.Module.load(library, 'signbridge-backing-token');
  try {
    // Signs run on the event loop AND on libuv threads: the token must lock (PKCS#11 v2.40 §5.4);
    // without CKF_OS_LOCKING_OK SoftHSMv2 does no locking and concurrent signs corrupt its heap.
    mod.initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (e) {
    if (!(isPkcs11Error(e) && e.code === CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
      try {
        mod.close();
      } catch {
        /* ignore */
      }
      throw e;
    }
  }
  libraries.set(library, { mod, users: 1 });
  return mod;
}

/** Drop one reference; the last one finalizes and unloads the library. */
export function releaseLibrary(library: string): void {
  const have = libraries.get(library);
  if (!have || --have.users > 0) return;
  libraries.delete(library);
  try {
    have.mod.finalize();
  } catch {
    /* not initialized */
  }
  try {
    have.mod.close();
  } catch {
    /* ignore */
  }
}
