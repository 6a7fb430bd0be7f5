// install-ksp / uninstall-ksp: registers "Signbridge Key Storage Provider" with CNG the way
// Microsoft documents for a KSP (BCryptRegisterProvider with the KEY_STORAGE interface, then
// BCryptAddContextFunctionProvider; "Cryptographic Provider Development Kit", and Google's kmscng
// does the same), after copying the DLL to %SystemRoot%\System32 where the router loads it from.
// Then it prints what the registry now holds under
// HKLM\SYSTEM\CurrentControlSet\Control\Cryptography\Providers\Signbridge Key Storage Provider,
// so the change is visible exactly.
#pragma once
#include <string>

namespace sb::win {

int install_ksp(const std::wstring& dll_path);
int uninstall_ksp();

}  // namespace sb::win
