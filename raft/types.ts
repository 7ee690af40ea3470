/**
 * The vocabulary of the Raft core: log entries, persistent state, messages and the `Ready`
 * batch the core hands to its driver. Nothing here does I/O.
 *
 * Indexes and terms are plain numbers (safe integers). Index 0 / term 0 mean "nothing":
 * the first real entry has index 1, and a log that holds nothing has last index 0, term 0.
 */

export type NodeId = string;

/** What an entry carries. A no-op is appended by every new leader (Raft §5.4.2, §8). */
export const EntryType = { Noop: 0, Command: 1 } as const;
export type EntryType = typeof EntryType[keyof typeof EntryType];

export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  /** Opaque command bytes (kv/command.ts); empty for a no-op. Never mutated after creation. */
  data: Uint8Array;
}

/** State that must be durable before the node speaks (Figure 2 "persistent state"). */
export interface HardState {
  term: number;
  /** Who this node voted for in `term`, or "" for nobody. */
  vote: NodeId;
  /** Highest index known committed. Not needed for safety; lets a restart re-apply at once. */
  commit: number;
}

/** Describes a state-machine snapshot: everything up to and including `index`. */
export interface SnapshotMeta {
  index: number;
  term: number;
  /** The voting members when the snapshot was taken (membership is static for now). */
  voters: NodeId[];
}

export type Role = "follower" | "preCandidate" | "candidate" | "leader";

// ---- messages -------------------------------------------------------------------------------
// Requests (vote, append, snapshot, readIndex) travel from `from` to `to`. The core answers
// every vote/append/snapshot request it steps with exactly one reply, produced during that
// step and placed in the outbox in step order; the transport relies on this to send the reply
// back on the request's own HTTP exchange. A readIndex request is answered later (after a
// heartbeat round), matched by `ctx`.

interface MessageBase {
  from: NodeId;
  to: NodeId;
  /** The sender's current term (for pre-votes: the term it would campaign in). */
  term: number;
}

/** RequestVote (Figure 2), or a pre-vote (thesis §9.6) that changes no one's term. */
export interface VoteRequest extends MessageBase {
  type: "vote";
  pre: boolean;
  lastLogIndex: number;
  lastLogTerm: number;
}

export interface VoteResponse extends MessageBase {
  type: "voteResp";
  pre: boolean;
  granted: boolean;
}

/**
 * AppendEntries (Figure 2). A heartbeat is an append with no entries whose prevLogIndex is
 * the follower's known match, so it always passes the consistency check of an up-to-date
 * follower. `readSeq` numbers the leader's leadership-confirmation rounds (ReadIndex, thesis
 * §6.4): a reply echoing it confirms that the follower still accepted this leader.
 */
export interface AppendRequest extends MessageBase {
  type: "append";
  prevLogIndex: number;
  prevLogTerm: number;
  entries: Entry[];
  leaderCommit: number;
  readSeq: number;
}

export interface AppendResponse extends MessageBase {
  type: "appendResp";
  success: boolean;
  /** On success: the highest index known to match the leader's log. */
  matchIndex: number;
  /** On rejection: where the leader should look next (thesis §5.3 fast back-off). */
  conflictIndex: number;
  /** On rejection: the follower's term at prevLogIndex, or 0 if its log is too short. */
  conflictTerm: number;
  /** On rejection: the prevLogIndex that did not match (lets the leader spot stale replies). */
  rejectIndex: number;
  /** The follower's last log index (for diagnostics and progress tracking). */
  lastLogIndex: number;
  readSeq: number;
}

/**
 * InstallSnapshot. In the core this is a whole snapshot: the leader's core asks for the
 * snapshot described by `meta` to be sent; the transport streams the bytes in chunks and
 * steps one message per chunk on the receiver (`done` false), then a final one (`done` true)
 * once the receiver has the verified file. Only the final one can install it.
 */
export interface SnapshotRequest extends MessageBase {
  type: "snapshot";
  meta: SnapshotMeta;
  done: boolean;
}

export interface SnapshotResponse extends MessageBase {
  type: "snapshotResp";
  /** Index the follower now matches (meta.index once installed; 0 while chunks stream). */
  matchIndex: number;
  /** False when the follower refused (stale term). */
  accepted: boolean;
}

/** A follower asks the leader for a read index on behalf of a client read (thesis §6.4). */
export interface ReadIndexRequest extends MessageBase {
  type: "readIndex";
  ctx: number;
}

export interface ReadIndexResponse extends MessageBase {
  type: "readIndexResp";
  ctx: number;
  /** The index the read must wait for; meaningful only when ok. */
  index: number;
  ok: boolean;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | SnapshotRequest
  | SnapshotResponse
  | ReadIndexRequest
  | ReadIndexResponse;

export type MessageType = Message["type"];

export const REPLY_TYPE = {
  vote: "voteResp",
  append: "appendResp",
  snapshot: "snapshotResp",
  readIndex: "readIndexResp",
} as const satisfies Record<string, MessageType>;

export function isRequest(m: Message): m is VoteRequest | AppendRequest | SnapshotRequest {
  return m.type === "vote" || m.type === "append" || m.type === "snapshot";
}

/** The answer to a read-index request, local (from === self) or from a follower. */
export interface ReadState {
  ctx: number;
  /** The read may be served once lastApplied >= index. */
  index: number;
  /** False: the read could not be confirmed (no leader, leadership lost); retry elsewhere. */
  ok: boolean;
}

/**
 * One batch of work from the core. The driver must, in this order:
 *   1. install `snapshot` (if any) and append `entries` (truncating any stored entries at or
 *      after entries[0].index), persist `hardState` (if any), and sync once;
 *   2. only then send `messages` (a leader's "append" and "snapshot" messages may be sent
 *      before the sync: thesis §10.2.1; see `canSendBeforePersist`);
 *   3. apply `committed` in order and deliver `readStates`;
 *   4. call `advance(ready)`.
 */
export interface Ready {
  hardState: HardState | null;
  snapshot: SnapshotMeta | null;
  entries: Entry[];
  messages: Message[];
  committed: Entry[];
  readStates: ReadState[];
  /** True when something in this batch must be synced before the messages go out. */
  mustSync: boolean;
}

/** Messages a leader may send before its own write is durable (thesis §10.2.1). */
export function canSendBeforePersist(m: Message): boolean {
  return m.type === "append" || m.type === "snapshot";
}

/** Thrown when an internal invariant breaks: a bug, never bad input. */
export class InvariantError extends Error {
  override name = "InvariantError";
}

export function invariant(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new InvariantError(typeof message === "string" ? message : message());
}
