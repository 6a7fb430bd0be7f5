// Lifecycle (C_Initialize, C_Finalize), library, slot, token and mechanism queries.
#include "bridge.h"

#include <cstring>

#include "bridge_common.h"
#include "templates.h"

namespace sb::bridge {

namespace {

// C_Initialize/C_Finalize against each other (v2.40 §5.4 leaves concurrent calls to the app,
// this just keeps two racing C_Initialize calls from both succeeding). The lock lives in
// state.cpp: the fork handlers take it around fork() so a child never inherits it held.
struct LifecycleGuard {
  LifecycleGuard() { lock_lifecycle(); }
  ~LifecycleGuard() { unlock_lifecycle(); }
};

// Fixed-width CK_UTF8CHAR fields: blank-padded, never NUL-terminated, cut at a character
// boundary (libp11 reads them as such).
void pad(CK_UTF8CHAR* dst, size_t width, const std::string& s) {
  memset(dst, ' ', width);
  size_t n = s.size() < width ? s.size() : width;
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) n--;
  memcpy(dst, s.data(), n);
}

constexpr CK_VERSION MODULE_VERSION = {0, 1};

}  // namespace

Status initialize(CK_C_INITIALIZE_ARGS_PTR args) {
  LifecycleGuard g;
  // Argument checks come first (v2.40 §5.4); then "already initialized".
  auto lib = std::make_unique<Library>();
  ASSIGN_OR_RETURN(lib->lock, Locking::create(args));
  // No I/O and no thread here (design.md; p11tool passes CKF_LIBRARY_CANT_CREATE_OS_THREADS).
  set_debug_from_env();
  lib->state.client = std::make_shared<DaemonClient>(config_from_env());
  if (!install_library(std::move(lib)))
    return Status(CKR_CRYPTOKI_ALREADY_INITIALIZED,
                  "already initialized in this process (another library or plugin loaded the module too?); "
                  "C_Finalize first");
  install_fork_handler();
  return Status::Ok();
}

Status finalize() {
  LifecycleGuard g;
  std::unique_ptr<Library> lib = take_library();
  if (!lib) return Status(CKR_CRYPTOKI_NOT_INITIALIZED);
  // Callers still doing I/O may hold the client a little longer: wipe the PIN now.
  lib->state.client->forget_pin();
  return Status::Ok();  // sessions, inventory and idle connections go with it
}

Status check_initialized() {
  StateLock st;
  return st.status();  // ok while initialized
}

Status get_info(CK_INFO& info) {
  {
    StateLock st;
    RETURN_IF_ERROR(st.status());
  }
  memset(&info, 0, sizeof info);
  info.cryptokiVersion = {2, 40};
  pad(info.manufacturerID, sizeof info.manufacturerID, "signbridge");
  info.flags = 0;
  pad(info.libraryDescription, sizeof info.libraryDescription, "signbridge PKCS#11 bridge");
  info.libraryVersion = MODULE_VERSION;
  return Status::Ok();
}

Status get_slot_list(bool /*token_present: every slot has its token*/, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  Status s = ensure_inventory();
  // design.md: daemon unreachable → CKR_FUNCTION_FAILED, the code v2.40 allows here.
  if (!s.ok()) return s.rv() == CKR_CRYPTOKI_NOT_INITIALIZED ? s : Status(CKR_FUNCTION_FAILED, s.message());
  StateLock st;
  RETURN_IF_ERROR(st.status());
  return write_list(st->inventory->slots, list, count, [](const SlotRec& slot) { return slot.id; });
}


Status get_slot_info(CK_SLOT_ID id, CK_SLOT_INFO& info) {
  return with_slot(id, [&](State&, const SlotRec& slot) {
    memset(&info, 0, sizeof info);
    pad(info.slotDescription, sizeof info.slotDescription, slot.description);
    pad(info.manufacturerID, sizeof info.manufacturerID, slot.manufacturer);
    info.flags = CKF_TOKEN_PRESENT;
    info.hardwareVersion = MODULE_VERSION;
    info.firmwareVersion = MODULE_VERSION;
    return Status::Ok();
  });
}

Status get_token_info(CK_SLOT_ID id, CK_TOKEN_INFO& info) {
  return with_slot(id, [&](State& st, const SlotRec& slot) {
    memset(&info, 0, sizeof info);
    pad(info.label, sizeof info.label, slot.label);
    pad(info.manufacturerID, sizeof info.manufacturerID, slot.manufacturer);
    pad(info.model, sizeof info.model, slot.model);
    pad(info.serialNumber, sizeof info.serialNumber, slot.serial);
    // CKF_RNG: C_GenerateRandom is the module's own (bridge_random.cpp)
    info.flags = slot.token_flags | CKF_RNG | (st.sessions.pin_failed(slot.id) ? CKF_USER_PIN_COUNT_LOW : 0);
    info.ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
    info.ulSessionCount = st.sessions.count(slot.id, false);
    info.ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
    info.ulRwSessionCount = st.sessions.count(slot.id, true);
    info.ulMaxPinLen = 255;
    info.ulMinPinLen = 0;  // any PIN is accepted locally (design.md "Login model")
    info.ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    info.ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    info.ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info.ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info.hardwareVersion = MODULE_VERSION;
    info.firmwareVersion = MODULE_VERSION;
    memset(info.utcTime, ' ', sizeof info.utcTime);  // no CKF_CLOCK_ON_TOKEN
    return Status::Ok();
  });
}

Status get_mechanism_list(CK_SLOT_ID id, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) {
  return with_slot(id, [&](State&, const SlotRec& slot) {
    return write_list(slot.mechanisms, list, count, [](const proto::Mechanism& m) { return m.type; });
  });
}

Status get_mechanism_info(CK_SLOT_ID id, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO& info) {
  return with_slot(id, [&](State&, const SlotRec& slot) {
    const proto::Mechanism* m = slot.mechanism(type);
    if (!m)
      return Status(CKR_MECHANISM_INVALID, "this slot does not offer the mechanism (C_GetMechanismList lists what it "
                                           "does; Ed25519 keys have a slot of their own)");
    info.ulMinKeySize = m->min_key_size;
    info.ulMaxKeySize = m->max_key_size;
    info.flags = m->flags;
    return Status::Ok();
  });
}

}  // namespace sb::bridge
