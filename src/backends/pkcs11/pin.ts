// The token PIN comes from SIGNBRIDGE_PIN or a PIN file — never from argv (visible in `ps`) and
// never into logs or error text.
import { openSync, fstatSync, readFileSync, closeSync } from 'node:fs';
import { sbError } from '../../core/errors.js';
import { groupOrOthersCanRead } from '../../core/paths.js';

export function readPin(opts: { pinFile?: string | undefined; env?: NodeJS.ProcessEnv }): string {
  const env = opts.env ?? process.env;
  if (opts.pinFile) {
    const file = opts.pinFile;
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch (e) {
      throw sbError('SIGNBRIDGE_ERR_PIN_FILE', { file, problem: `${(e as NodeJS.ErrnoException).code ?? 'cannot open it'}: check the path` });
    }
    try {
      // fstat on the opened fd: no window between the check and the read.
      const st = fstatSync(fd);
      if (!st.isFile()) throw sbError('SIGNBRIDGE_ERR_PIN_FILE', { file, problem: 'it is not a regular file' });
      if (groupOrOthersCanRead(st.mode)) {
        throw sbError('SIGNBRIDGE_ERR_PIN_FILE', {
          file,
          problem: `its mode is 0${(st.mode & 0o777).toString(8)}, readable by group or others: run \`chmod 600 ${file}\``,
        });
      }
      const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
      if (st.uid !== uid) throw sbError('SIGNBRIDGE_ERR_PIN_FILE', { file, problem: `it is owned by uid ${st.uid}, not by the daemon's user (${uid})` });
      const pin = readFileSync(fd, 'utf8').replace(/\r?\n$/, '');
      if (pin.length === 0) throw sbError('SIGNBRIDGE_ERR_PIN_FILE', { file, problem: 'it is empty' });
      return pin;
    } finally {
      closeSync(fd);
    }
  }
  if (env.SIGNBRIDGE_PIN) return env.SIGNBRIDGE_PIN;
  throw sbError('SIGNBRIDGE_ERR_PIN_MISSING', {});
}
