// The GitHub composite action (action.yml, stop/action.yml) run the way the runner runs it: each
// `run:` step in `bash --noprofile --norc -eo pipefail`, with its `env:` (${{ inputs.* }}
// substituted, defaults applied), INPUT_* variables, and the files GITHUB_ENV / GITHUB_PATH /
// GITHUB_OUTPUT applied between steps. The inputs carry the STM emulator's credentials as a user's
// repository secrets would (the PKCS#12 in base64); the action installs the packed tarball with no
// compiler on PATH; osslsigncode then signs a PE with only what the action exported, and
// `osslsigncode verify` checks it against the emulator's CA. docs/ci/shell.md's script runs too, as
// written but for the package (the tarball) and the key name. About 60 s (+ prebuilds when stale).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { osslsigncodeSign, osslsigncodeVerify, parseVerify } from '../../src/demo/osslsigncode.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { unsignedPe } from '../helpers/module.js';
import { ROOT, compilerFreePath, ensurePrebuilds, pack, run, userEnv } from '../helpers/pack.js';

interface Step {
  name?: string;
  id?: string;
  shell?: string;
  env?: Record<string, string>;
  run?: string;
  uses?: string;
}
interface Action {
  inputs?: Record<string, { required?: boolean; default?: string }>;
  outputs?: Record<string, { value: string }>;
  runs: { using: string; steps: Step[] };
}

/** What a job keeps between steps: its environment, PATH additions, and each step's outputs. */
interface Job {
  env: Record<string, string>;
  path: string[];
  outputs: Record<string, Record<string, string>>;
  temp: string;
}

/** GITHUB_ENV / GITHUB_OUTPUT syntax: NAME=value lines and NAME<<DELIM … DELIM blocks. */
function parseCommandFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const body: string[] = [];
      while (++i < lines.length && lines[i] !== heredoc[2]) body.push(lines[i]!);
      out[heredoc[1]!] = body.join('\n');
    } else if (line.includes('=')) {
      out[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
    }
  }
  return out;
}

/** ${{ inputs.x }} and ${{ github.action_path }} — the only expressions the actions use, and only in env:. */
function expand(value: string, inputs: Record<string, string>, actionPath: string): string {
  return value.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, expr: string) => {
    const m = /^inputs\.([A-Za-z0-9_-]+)$/.exec(expr);
    if (m) return inputs[m[1]!] ?? '';
    if (expr === 'github.action_path') return actionPath;
    throw new Error(`unsupported expression ${expr}`);
  });
}

/** Run one composite action as the runner does; returns its outputs. Throws on a failing step. */
async function runAction(file: string, given: Record<string, string>, job: Job): Promise<{ outputs: Record<string, string>; logs: string[] }> {
  const action = parse(readFileSync(file, 'utf8')) as Action;
  expect(action.runs.using).toBe('composite');
  const inputs: Record<string, string> = {};
  for (const [name, spec] of Object.entries(action.inputs ?? {})) {
    const v = given[name] ?? spec.default;
    if (v === undefined && spec.required) throw new Error(`input ${name} is required`);
    inputs[name] = v ?? '';
  }
  const logs: string[] = [];
  for (const [i, step] of action.runs.steps.entries()) {
    expect(step.run, `step ${i} of ${file} runs a script`).toBeDefined();
    expect(step.shell).toBe('bash');
    // no template expansion inside scripts: inputs reach them only through env (no script injection)
    expect(step.run).not.toMatch(/\$\{\{/);
    const files = Object.fromEntries(['GITHUB_ENV', 'GITHUB_PATH', 'GITHUB_OUTPUT'].map((k) => [k, join(job.temp, `${k}-${Date.now()}-${i}`)]));
    for (const f of Object.values(files)) writeFileSync(f, '');
    const inputEnv = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v]));
    const stepEnv = Object.fromEntries(Object.entries(step.env ?? {}).map(([k, v]) => [k, expand(String(v), inputs, dirname(file))]));
    const script = join(job.temp, `step-${i}.sh`);
    writeFileSync(script, step.run!);
    const env: Record<string, string> = { ...job.env, ...inputEnv, ...stepEnv, ...files, RUNNER_TEMP: job.temp, GITHUB_ACTION_PATH: dirname(file) };
    env.PATH = [...job.path, job.env.PATH].join(delimiter);
    // asynchronous: the emulator answers from this process meanwhile
    const r = await run('bash', ['--noprofile', '--norc', '-eo', 'pipefail', script], { env, timeoutMs: 300_000 });
    logs.push(`--- ${step.name}\n${r.stdout}${r.stderr}`);
    if (r.status !== 0) throw new Error(`step "${step.name}" exited ${r.status}\n${logs.join('\n')}`);
    Object.assign(job.env, parseCommandFile(readFileSync(files.GITHUB_ENV!, 'utf8')));
    job.path.unshift(...readFileSync(files.GITHUB_PATH!, 'utf8').split('\n').filter(Boolean).reverse());
    if (step.id) job.outputs[step.id] = parseCommandFile(readFileSync(files.GITHUB_OUTPUT!, 'utf8'));
  }
  const outputs: Record<string, string> = {};
  for (const [name, o] of Object.entries(action.outputs ?? {})) {
    outputs[name] = o.value.replace(/\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)\s*\}\}/g, (_, s: string, k: string) => job.outputs[s]?.[k] ?? '');
  }
  return { outputs, logs };
}

let work: string;
let emu: TestEmulator;
let tarball: string;
let job: Job;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sb-action-'));
  await ensurePrebuilds();
  tarball = pack(join(work, 'tarball')).tarball;
  emu = await startTestEmulator();
  const temp = join(work, 'runner-temp');
  mkdirSync(temp);
  // the job: a user's environment with no compiler, npm's global prefix in the workspace (as on a
  // runner, where it is writable), and the CA of the emulator's server as a job-level env entry
  job = {
    env: userEnv({ PATH: compilerFreePath(join(work, 'nocc-bin')), npm_config_prefix: join(work, 'npm-global'), SIGNBRIDGE_STM_CA_FILE: emu.env.SIGNBRIDGE_STM_CA_FILE! }) as Record<string, string>,
    path: [],
    outputs: {},
    temp,
  };
}, 900_000);

afterAll(async () => {
  await emu?.stop();
  if (work && !process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(work, { recursive: true, force: true });
});

describe('action.yml (GitHub composite action) against the STM emulator', () => {
  it('installs signbridge, starts the stm daemon with the secrets in 0600 files, exports the socket and module; osslsigncode signs a PE; stop/ ends it', async () => {
    const inputs = {
      SM_HOST: emu.env.SM_HOST!,
      SM_API_KEY: emu.env.SM_API_KEY!,
      SM_CLIENT_CERT_FILE_B64: readFileSync(emu.env.SM_CLIENT_CERT_FILE!).toString('base64'),
      SM_CLIENT_CERT_PASSWORD: emu.env.SM_CLIENT_CERT_PASSWORD!,
      package: tarball,
    };
    const { outputs, logs } = await runAction(join(ROOT, 'action.yml'), inputs, job);
    const log = logs.join('\n');
    expect(log).toContain('codesign-rsa');
    for (const secret of [inputs.SM_API_KEY, inputs.SM_CLIENT_CERT_PASSWORD]) expect(log).not.toContain(secret);

    // what the next steps of the job see
    const { SIGNBRIDGE_SOCKET: socket, SIGNBRIDGE_MODULE: module, SIGNBRIDGE_CI_DIR: dir } = job.env;
    expect(module).toBe(outputs['module-path']);
    expect(socket).toBe(outputs.socket);
    expect(existsSync(module!)).toBe(true);
    expect(module).toContain(join(work, 'npm-global'));
    for (const f of ['api-key', 'client.p12', 'client.p12.password']) expect(statSync(join(dir!, f)).mode & 0o777, f).toBe(0o600);
    expect(readFileSync(join(dir!, 'client.p12')).equals(readFileSync(emu.env.SM_CLIENT_CERT_FILE!))).toBe(true);
    const pid = Number(readFileSync(join(dir!, 'daemon.pid'), 'utf8'));
    expect(() => process.kill(pid, 0)).not.toThrow();

    // a later step of the job: osslsigncode with the exported module and socket only
    const signed = join(work, 'signed.exe');
    const stepEnv = { ...job.env, PATH: [...job.path, job.env.PATH].join(delimiter) };
    const s = await osslsigncodeSign({ module: module!, tokenLabel: 'signbridge-stm', keyLabel: 'codesign-ec', input: unsignedPe(), output: signed, env: stepEnv });
    expect(s.status, `${s.stdout}\n${s.stderr}`).toBe(0);
    const v = parseVerify(await osslsigncodeVerify(signed, emu.env.SIGNBRIDGE_STM_CA_FILE!));
    expect(v.ok, v.line).toBe(true);
    expect(v.signer).toContain('CN=codesign-ec');

    // the post step: the daemon stops on SIGTERM and the credential files are gone
    const stop = await runAction(join(ROOT, 'stop', 'action.yml'), {}, job);
    expect(stop.logs.join('\n')).not.toContain(inputs.SM_API_KEY);
    expect(() => process.kill(pid, 0)).toThrow();
    expect(existsSync(dir!)).toBe(false);
  });

  it('docs/ci/shell.md: its script, with the secrets in the environment, signs a PE that osslsigncode verify accepts', async () => {
    const md = readFileSync(join(ROOT, 'docs', 'ci', 'shell.md'), 'utf8');
    const block = /```sh\n([\s\S]*?)```/.exec(md)?.[1];
    expect(block).toContain('npm install -g signbridge');
    const script = block!
      .replace('npm install -g signbridge', `npm install -g --no-audit --no-fund '${tarball}'`)
      .replaceAll('my-cert-alias', 'codesign-rsa');
    const cwd = join(work, 'shell-recipe');
    mkdirSync(cwd);
    writeFileSync(join(cwd, 'app.exe'), readFileSync(unsignedPe()));
    writeFileSync(join(cwd, 'sign.sh'), script);
    const prefix = join(work, 'npm-global-shell');
    const env = userEnv({
      PATH: `${join(prefix, 'bin')}${delimiter}${job.env.PATH}`,
      npm_config_prefix: prefix,
      SM_HOST: emu.env.SM_HOST!,
      SM_API_KEY: emu.env.SM_API_KEY!,
      SM_CLIENT_CERT_FILE_B64: readFileSync(emu.env.SM_CLIENT_CERT_FILE!).toString('base64'),
      SM_CLIENT_CERT_PASSWORD: emu.env.SM_CLIENT_CERT_PASSWORD!,
      SIGNBRIDGE_STM_CA_FILE: emu.env.SIGNBRIDGE_STM_CA_FILE!,
    });
    const r = await run('bash', [join(cwd, 'sign.sh')], { cwd, env, timeoutMs: 300_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(`${r.stdout}${r.stderr}`).not.toContain(emu.env.SM_API_KEY!);
    const v = parseVerify(await osslsigncodeVerify(join(cwd, 'app-signed.exe'), emu.env.SIGNBRIDGE_STM_CA_FILE!));
    expect(v.ok, v.line).toBe(true);
    expect(v.signer).toContain('CN=codesign-rsa');
  });
});
