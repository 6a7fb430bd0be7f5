// Who may connect (README "Security model"): the daemon's own uid, plus the uids given with
// --allow-uid — for a daemon run as root (a system service) that serves a build user. Root is not
// an exception unless the daemon runs as root or root is listed.

export interface PeerPolicy {
  /** Every uid that may connect, the daemon's own first. */
  readonly allowed: readonly number[];
  /** undefined when `uid` may connect, else the log line's message saying why not. */
  refusal(uid: number): string | undefined;
  /** Fields of the refusal's log line. */
  readonly logFields: Record<string, unknown>;
}

/**
 * The policy for a daemon running as `ownUid` (undefined: no uid on this platform, nobody is
 * refused) with `extra` uids allowed besides it.
 */
export function peerPolicy(ownUid: number | undefined, extra: readonly number[]): PeerPolicy {
  if (ownUid === undefined) return { allowed: [], refusal: () => undefined, logFields: {} };
  const others = [...new Set(extra)].filter((u) => u !== ownUid);
  const allowed = new Set([ownUid, ...others]);
  const why = others.length === 0 ? `the daemon's uid ${ownUid}` : `the daemon's uid ${ownUid} nor an --allow-uid (${others.join(', ')})`;
  return {
    allowed: [ownUid, ...others],
    refusal: (uid) => (allowed.has(uid) ? undefined : `connection refused: peer uid ${uid} is not ${why}`),
    logFields: others.length === 0 ? { allowedUid: ownUid } : { allowedUid: ownUid, allowUids: others },
  };
}

/** "--allow-uid 1000,1001" (or a JSON number in the config file) as uids; throws a sentence. */
export function parseUidList(v: string | number): number[] {
  const parts = typeof v === 'number' ? [String(v)] : v.split(',').map((x) => x.trim()).filter((x) => x !== '');
  if (parts.length === 0) throw new Error('--allow-uid needs at least one uid');
  return parts.map((x) => {
    // numeric uids only: a user name would need a passwd lookup that can change under the daemon
    if (!/^\d+$/.test(x) || Number(x) > 0xfffffffe) throw new Error(`--allow-uid takes numeric uids separated by commas (e.g. 1000,1001), got "${x}"`);
    return Number(x);
  });
}
