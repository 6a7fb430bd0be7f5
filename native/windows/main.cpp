// signbridge-windows.exe: the Windows-only parts of `signbridge windows …` (src/cli/windows.ts
// runs it): the KSP's CNG registration and the certificate ↔ key links in the user's My store.
//   signbridge-windows install-ksp <signbridge-ksp.dll> | uninstall-ksp
//   signbridge-windows certsync <key name> <certificate DER hex> | certdesync | certlist
// Exit status: 0 done, 2 usage, 3 Windows refused, 4 needs an administrator.
#include <windows.h>

#include <cstdio>
#include <cwchar>

#include "cert_store.h"
#include "ksp_registry.h"
#include "win_text.h"

// wmain (-municode): key names and paths arrive as UTF-16, whatever the ANSI code page.
int wmain(int argc, wchar_t** argv) {
  using namespace sb::win;
  const wchar_t* cmd = argc > 1 ? argv[1] : L"";
  if (!wcscmp(cmd, L"install-ksp") && argc == 3) return install_ksp(argv[2]);
  if (!wcscmp(cmd, L"uninstall-ksp") && argc == 2) return uninstall_ksp();
  if (!wcscmp(cmd, L"certsync") && argc == 4) return cert_sync(argv[2], utf8(argv[3]));
  if (!wcscmp(cmd, L"certdesync") && argc == 2) return cert_desync();
  if (!wcscmp(cmd, L"certlist") && argc == 2) return cert_list();
  return fail(2, "usage: signbridge-windows install-ksp <dll> | uninstall-ksp | certsync <key> <der hex> | certdesync | certlist");
}
