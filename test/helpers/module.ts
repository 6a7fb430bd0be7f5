// Paths of the things under test.
import { modulePath } from '../../src/native/loader.js';
import { requiredFile } from '../../src/demo/requirements.js';

/** build/Release/libsignbridge-pkcs11.so (or SIGNBRIDGE_MODULE); throws with the build command if missing. */
export function signbridgeModule(): string {
  return modulePath();
}

/** /usr/share/win32/win32-loader.exe: a real, unsigned Windows PE (Debian package win32-loader). */
export function unsignedPe(): string {
  return requiredFile('win32-loader');
}

/** The libp11 OpenSSL engine osslsigncode needs (-pkcs11engine). */
export function libp11Engine(): string {
  return requiredFile('libengine-pkcs11-openssl');
}
