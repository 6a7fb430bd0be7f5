// pino to stderr (stdout stays free for command output), with secrets redacted wherever they
// might appear in a logged object.
import pino, { type Logger } from 'pino';

export const REDACT_PATHS = [
  'pin', '*.pin', 'userPin', '*.userPin',
  'apiKey', '*.apiKey', 'api_key', '*.api_key',
  'password', '*.password',
  'authorization', '*.authorization', 'headers.authorization', '*.headers.authorization',
  '["x-api-key"]', '*["x-api-key"]', 'headers["x-api-key"]', '*.headers["x-api-key"]',
];

export function createLogger(level: string, destination: pino.DestinationStream | number = 2): Logger {
  const dest = typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination;
  return pino(
    {
      name: 'signbridge',
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    dest,
  );
}
