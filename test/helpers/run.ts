// Run a command (no shell) and capture its output; a failure message carries the command and both streams.
import { runCommand, type RunResult } from '../../src/demo/osslsigncode.js';

export { runCommand, type RunResult };

export function describeRun(r: RunResult): string {
  return `$ ${r.command}\nexit ${r.status}${r.signal ? ` (${r.signal})` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
