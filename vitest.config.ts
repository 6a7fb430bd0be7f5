// Three projects (unit, integration, e2e), all in child processes (pool 'forks': native code —
// pkcs11js, the addon, dlopen'ed modules — is never loaded into worker threads). One SoftHSMv2
// token is created for the whole run by test/setup/global-setup.ts and handed to tests via inject().
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    globalSetup: ['test/setup/global-setup.ts'],
    projects: [
      {
        extends: true,
        // unit: in-process only (no daemon, child process, dlopen'ed module or SoftHSMv2 token; those
        // tests live in integration/ or e2e/), so a test that takes seconds is a hang, not load
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 5_000, hookTimeout: 5_000 },
      },
      {
        extends: true,
        test: { name: 'integration', include: ['test/integration/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 },
      },
      {
        extends: true,
        // osslsigncode, jarsigner & co. start real processes and a daemon: generous timeouts
        test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], testTimeout: 180_000, hookTimeout: 120_000 },
      },
    ],
  },
});
