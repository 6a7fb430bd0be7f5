// Help texts the CLI prints without loading a command's code (`signbridge --help` and
// `signbridge module-path` must start fast: every recipe runs `$(signbridge module-path)`).

export const USAGE = `Usage: signbridge <command> [options]

Commands:
  module-path   print the path of libsignbridge-pkcs11.so (give it to your signing tool)
  daemon        run the signing daemon (see \`signbridge daemon --help\`)
  keys          list the keys a running daemon serves, with their pkcs11: URIs
                (\`--recipes\`: the command line of each signing tool for each key)
  demo          sign a Windows executable end to end: module → daemon (stm) → STM emulator
                (\`--backend pkcs11\`: the local chain with a throw-away SoftHSMv2 token)
  emulator      a local DigiCert Software Trust Manager emulator (\`signbridge emulator --help\`)
  doctor        check the module, the daemon, its keys and the signing tools; each problem with its fix
  otp           ask the CSC service to send an OTP for a credential (csc backend; \`signbridge otp --help\`)
  windows       Windows only: install-ksp, uninstall-ksp, certsync, certdesync (signtool through CNG)

Run \`signbridge <command> --help\` for a command's options.
`;

export const MODULE_PATH_HELP = `Usage: signbridge module-path

Prints the absolute path of libsignbridge-pkcs11.so, the PKCS#11 module to give signing tools
(osslsigncode -pkcs11module, SunPKCS11 library=, pkcs11-tool --module).
Lookup order: $SIGNBRIDGE_MODULE, else beside the addon: build/Release/ (a local build) before
prebuilds/<platform>-<arch>/ (shipped with the package).
`;

export const KEYS_HELP = `Usage: signbridge keys [--json] [--socket <path>]
       signbridge keys --recipes [--tool osslsigncode|jarsigner|openssl|pkcs11-tool|ssh] [--socket <path>]

Lists the keys a running signbridge daemon serves: label, CKA_ID (hex), algorithm, certificate
subject and expiry, and the pkcs11: URI to give a signing tool (e.g. osslsigncode -key).
  --json            machine-readable output
  --recipes         for each key, the exact command line of each signing tool (this machine's
                    module path, the key's URI or alias), ready to paste; inputs are app.exe,
                    app.jar and file in the current directory (ssh: the file signature
                    through ssh-agent, docs/recipes/openssh.md)
  --tool <name>     only this tool's recipes (repeat, or comma-separate)
  --socket <path>   the daemon's socket (default: $SIGNBRIDGE_SOCKET, else the per-user default)
`;

export const WINDOWS_HELP = `Usage: signbridge windows install-ksp [--dll <signbridge-ksp.dll>]
       signbridge windows uninstall-ksp
       signbridge windows certsync [--socket <pipe>]
       signbridge windows certdesync

Windows only (docs/windows-signtool.md): signtool finds a private key through CNG, so
signbridge ships a CNG key storage provider, "Signbridge Key Storage Provider".
  install-ksp     copy signbridge-ksp.dll to %SystemRoot%\\System32 and register the provider
                  (administrator); prints the registry entries it made
  uninstall-ksp   undo install-ksp (administrator); prints what it removed
  certsync        put each key's certificate into the current user's My store, linked to the
                  provider and the key's name; then: signtool sign /sha1 <thumbprint> /fd sha256 …
  certdesync      remove the certificates certsync linked
  --socket <pipe> the daemon's pipe (default: $SIGNBRIDGE_SOCKET, else the per-user default)
`;
