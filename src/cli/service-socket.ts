// The sockets of the systemd units in docs/service/, so `signbridge doctor` can tell a service's
// daemon from a hand-started one and find the system unit's socket, which is not a default path.
//   user unit:   %t/signbridge/signbridge.sock = $XDG_RUNTIME_DIR/signbridge/signbridge.sock (the default)
//   system unit: /run/signbridge/signbridge.sock (RuntimeDirectory=signbridge, owned by its User=)
import { statSync } from 'node:fs';
import { join } from 'node:path';

export const SYSTEM_UNIT_SOCKET = '/run/signbridge/signbridge.sock';

export interface ServiceSocket {
  /** the socket doctor should examine */
  socket: string;
  /** which unit listens there, when the path is one of theirs */
  unit?: 'user' | 'system';
  /** the default path had no socket and the system unit's has one: tools need SIGNBRIDGE_SOCKET */
  switched?: boolean;
}

function isSocket(p: string): boolean {
  try {
    return statSync(p).isSocket();
  } catch {
    return false;
  }
}

/**
 * `socket` is what doctor was asked to check; `explicit` when it came from --socket or
 * SIGNBRIDGE_SOCKET (then it is never replaced).
 */
export function serviceSocket(socket: string, explicit: boolean, env: NodeJS.ProcessEnv = process.env, systemSocket = SYSTEM_UNIT_SOCKET): ServiceSocket {
  const userSocket = env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'signbridge', 'signbridge.sock') : undefined;
  const unitOf = (p: string): ServiceSocket['unit'] => (p === systemSocket ? 'system' : p === userSocket ? 'user' : undefined);
  if (!explicit && !isSocket(socket) && isSocket(systemSocket)) return { socket: systemSocket, unit: 'system', switched: true };
  const unit = unitOf(socket);
  return unit ? { socket, unit } : { socket };
}
