// Reading a daemon's log from a test: the daemon writes it through a pipe, so a line may land a
// moment after the reply that caused it — wait for it (bounded) instead of reading once.
import { existsSync, readFileSync } from 'node:fs';

/** Resolve with the file's text once `re` (global) matches at least `count` times; throw after `ms`. */
export async function waitForLog(file: string, re: RegExp, count = 1, ms = 5000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const n = (text.match(new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`)) ?? []).length;
    if (n >= count) return text;
    if (Date.now() > deadline) throw new Error(`${file}: ${n} of ${count} lines matching ${re} within ${ms} ms; the log:\n${text.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The JSON lines of a pino log (other lines skipped). */
export function jsonLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      /* a partial last line */
    }
  }
  return out;
}
