/** The state machine: in-order apply, delete results, and frozen views for snapshots. */
import { assertEquals, assertThrows } from "@std/assert";
import { EntryType } from "../raft/types.ts";
import { encodeCommand } from "./command.ts";
import { KvStore } from "./store.ts";

const put = (index: number, key: string, value: string) => ({
  index,
  term: 1,
  type: EntryType.Command,
  data: encodeCommand({ op: "put", key, value }),
});
const del = (index: number, key: string) => ({
  index,
  term: 1,
  type: EntryType.Command,
  data: encodeCommand({ op: "del", key }),
});

Deno.test("entries apply in strict index order; a gap or repeat is refused", () => {
  const kv = new KvStore();
  kv.apply(put(1, "a", "1"));
  assertThrows(() => kv.apply(put(3, "b", "2")), Error, "in order");
  assertThrows(() => kv.apply(put(1, "b", "2")), Error, "in order");
  kv.apply({ index: 2, term: 1, type: EntryType.Noop, data: new Uint8Array() });
  assertEquals(kv.appliedIndex, 2);
  assertEquals(kv.get("a"), "1");
});

Deno.test("a delete reports whether the key existed", () => {
  const kv = new KvStore();
  kv.apply(put(1, "a", "1"));
  assertEquals(kv.apply(del(2, "a")).deleted, true);
  assertEquals(kv.apply(del(3, "a")).deleted, false);
  assertEquals(kv.size, 0);
});

Deno.test("a frozen view keeps the state of its index while later writes apply", () => {
  const kv = new KvStore();
  kv.apply(put(1, "a", "1"));
  kv.apply(put(2, "b", "2"));
  const view = kv.freeze();
  kv.apply(put(3, "a", "changed"));
  kv.apply(del(4, "b"));
  kv.apply(put(5, "c", "3"));
  assertEquals(Object.fromEntries(view.entries()), { a: "1", b: "2" });
  assertEquals([view.index, view.size], [2, 2]);
  assertEquals([kv.get("a"), kv.get("b"), kv.get("c"), kv.size], ["changed", undefined, "3", 2]);
  kv.thaw(view);
  assertEquals(kv.dump(), [["a", "changed"], ["c", "3"]]);
  assertEquals(kv.size, 2);
});
