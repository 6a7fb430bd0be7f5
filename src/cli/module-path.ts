import { modulePath } from '../native/loader.js';

export const MODULE_PATH_HELP = `Usage: signbridge module-path

Prints the absolute path of libsignbridge-pkcs11.so, the PKCS#11 module to give signing tools
(osslsigncode -pkcs11module, SunPKCS11 library=, pkcs11-tool --module).
Lookup order: $SIGNBRIDGE_MODULE, else beside the addon: build/Release/ (a local build) before
prebuilds/<platform>-<arch>/ (shipped with the package).
`;

export function runModulePath(): number {
  process.stdout.write(modulePath() + '\n');
  return 0;
}
