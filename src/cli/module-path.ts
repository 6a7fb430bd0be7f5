import { modulePath } from '../native/loader.js';

export { MODULE_PATH_HELP } from './help.js';

export function runModulePath(): number {
  process.stdout.write(modulePath() + '\n');
  return 0;
}
