// Which machine and versions a bench run measured (printed first, and kept in the JSON).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';

function first(cmd, args, re) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return 'not installed';
  const m = re.exec(`${r.stdout}\n${r.stderr}`);
  return m ? m[1] : 'unknown';
}

function dpkgVersion(pkg) {
  return first('dpkg-query', ['-W', '-f=${Version}', pkg], /^(\S+)$/m);
}

export function machineInfo() {
  let os = 'unknown';
  try {
    os = /^PRETTY_NAME="?([^"\n]+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch {
    /* no os-release */
  }
  return {
    cpu: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    os,
    kernel: release(),
    node: process.version,
    softhsm: first('softhsm2-util', ['--version'], /^(\d[\w.]*)/m),
    p11kit: dpkgVersion('p11-kit'),
    opensc: dpkgVersion('opensc'),
    osslsigncode: first('osslsigncode', ['--version'], /osslsigncode ([\d.]+)/),
    loadavg_at_start: loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

export function printMachine(m) {
  console.log(`machine: ${m.cpu}, ${m.memory_gib} GiB, ${m.os}, kernel ${m.kernel}; load average at start ${m.loadavg_at_start}`);
  console.log(`versions: node ${m.node}, SoftHSMv2 ${m.softhsm}, p11-kit ${m.p11kit}, OpenSC ${m.opensc}, osslsigncode ${m.osslsigncode}`);
}
