/**
 * One canonical, one-line text form per message and Ready (like etcd's Describe*): used in logs,
 * in the simulator's event trail and in test failures.
 */
import type { Entry, Message, Ready } from "./types.ts";

export function describeEntries(entries: Entry[]): string {
  if (entries.length === 0) return "[]";
  const first = entries[0], last = entries[entries.length - 1];
  if (entries.length <= 3) {
    return "[" + entries.map((e) => `${e.term}/${e.index}${e.type === 0 ? "noop" : ""}`).join(" ") +
      "]";
  }
  return `[${first.term}/${first.index}..${last.term}/${last.index} (${entries.length})]`;
}

export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case "vote":
      return `${head}${m.pre ? " pre" : ""} last=${m.lastLogTerm}/${m.lastLogIndex}`;
    case "voteResp":
      return `${head}${m.pre ? " pre" : ""} ${m.granted ? "granted" : "rejected"}`;
    case "append":
      return `${head} prev=${m.prevLogTerm}/${m.prevLogIndex} ${describeEntries(m.entries)} ` +
        `commit=${m.leaderCommit} seq=${m.readSeq}`;
    case "appendResp":
      return m.success
        ? `${head} ok match=${m.matchIndex} seq=${m.readSeq}`
        : `${head} reject at=${m.rejectIndex} hint=${m.conflictTerm}/${m.conflictIndex} ` +
          `last=${m.lastLogIndex} seq=${m.readSeq}`;
    case "snapshot":
      return `${head} snap=${m.meta.term}/${m.meta.index}${m.done ? " done" : " chunk"}`;
    case "snapshotResp":
      return `${head} ${m.accepted ? "ok" : "refused"} match=${m.matchIndex}`;
    case "readIndex":
      return `${head} ctx=${m.ctx}`;
    case "readIndexResp":
      return `${head} ctx=${m.ctx} ${m.ok ? `index=${m.index}` : "failed"}`;
  }
}

export function describeReady(rd: Ready): string {
  const parts: string[] = [];
  if (rd.hardState) {
    parts.push(
      `hs{t${rd.hardState.term} vote=${rd.hardState.vote || "-"} c${rd.hardState.commit}}`,
    );
  }
  if (rd.snapshot) parts.push(`install ${rd.snapshot.term}/${rd.snapshot.index}`);
  if (rd.entries.length) parts.push(`persist ${describeEntries(rd.entries)}`);
  if (rd.committed.length) parts.push(`apply ${describeEntries(rd.committed)}`);
  if (rd.readStates.length) {
    parts.push(`reads ${rd.readStates.map((r) => `${r.ctx}@${r.ok ? r.index : "x"}`).join(",")}`);
  }
  if (rd.messages.length) parts.push(`send ${rd.messages.length}`);
  return parts.join(" ") || "(empty)";
}
