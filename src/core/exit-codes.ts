// The version and the exit statuses of the `signbridge` command (`signbridge daemon --help`),
// apart from the daemon so the CLI can use them without loading it.
export const VERSION = '0.1.0';
export const EXIT = { OK: 0, FAILURE: 1, CONFIG: 2, BACKEND: 3, SOCKET: 4 } as const;
