// Public API of the signbridge package (the `signbridge` command is lib/cli/index.js).
export * from './core/pkcs11.js';
export { ERRORS, SignbridgeError, sbError, isSignbridgeError, ckrOf, type ErrorCode } from './core/errors.js';
export { keyHandle, pkcs11Uri, describeKey, nameToString, commonName, type KeyRecord, type TokenRecord, type KeyType, type Curve } from './core/keys.js';
export { mechanismsFor, slotMechanisms, primitiveOf, type MechanismInfo } from './core/mechanisms.js';
export { buildSlots, objectsForKeys, attr, type P11Slot, type P11Object, type P11Attribute } from './core/objects.js';
export { defaultSocketPath, stateDir, ensurePrivateDir } from './core/paths.js';
export * as protocol from './ipc/protocol.js';
export { FrameDecoder } from './ipc/framing.js';
export { DaemonClient, waitForDaemon, type ClientOptions } from './ipc/client.js';
export { DaemonServer, type ServerOptions, type Connection, type RequestHandler, type PeerInfo } from './daemon/server.js';
export { Dispatcher, type DispatcherOptions } from './daemon/dispatcher.js';
export type { Backend, SignParams } from './backends/types.js';
export { Pkcs11Backend, type Pkcs11BackendOptions } from './backends/pkcs11/index.js';
export { resolveConfig, type DaemonConfig } from './daemon/config.js';
export { startDaemon, runDaemon, EXIT, VERSION, type RunningDaemon } from './daemon/index.js';
export { createLogger, REDACT_PATHS } from './daemon/logger.js';
export { modulePath, loadAddon, packageRoot } from './native/loader.js';
