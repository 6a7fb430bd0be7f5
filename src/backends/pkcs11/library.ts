// One loaded+initialized PKCS#11 library per path and process, shared by every backend using it:
// a second C_Initialize/C_Finalize pair on the same library would tear down the sessions of the
// first (PKCS#11 v2.40 §5.4: C_Finalize ends the whole application's use of the library).
// pkcs11js alone, not graphene-pk11: the daemon needs a handful of calls, and graphene's import is
// a fifth of the daemon's start-up (docs/performance.md "Start-up").
import type * as P from 'pkcs11js';
import { pkcs11Binding } from '../../native/pkcs11js.js';
import { isPkcs11Error } from './token-errors.js';

const CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191;

const libraries = new Map<string, { lib: P.PKCS11; users: number }>();

/** Load and C_Initialize `library`, or take another user's reference to it. Throws the load/init error. */
export function acquireLibrary(library: string): P.PKCS11 {
  const have = libraries.get(library);
  if (have) {
    have.users++;
    return have.lib;
  }
  const { pkcs11js } = pkcs11Binding();
  const lib = new pkcs11js.PKCS11();
  lib.load(library);
  try {
    // Signs run on the event loop AND on libuv threads: the token must lock (PKCS#11 v2.40 §5.4);
    // without CKF_OS_LOCKING_OK SoftHSMv2 does no locking and concurrent signs corrupt its heap.
    lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (e) {
    // another part of this process (the emulator's HSM, a test's token set-up) initialized it first
    if (!(isPkcs11Error(e) && e.code === CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
      try {
        lib.close();
      } catch {
        /* ignore */
      }
      throw e;
    }
  }
  libraries.set(library, { lib, users: 1 });
  return lib;
}

/** Drop one reference; the last one finalizes and unloads the library. */
export function releaseLibrary(library: string): void {
  const have = libraries.get(library);
  if (!have || --have.users > 0) return;
  libraries.delete(library);
  try {
    have.lib.C_Finalize();
  } catch {
    /* not initialized */
  }
  try {
    have.lib.close();
  } catch {
    /* ignore */
  }
}
