/** Command encoding: deterministic bytes, exact round trips, and clear errors on bad bytes. */
import { assertEquals, assertThrows } from "@std/assert";
import { CodecError } from "../raft/codec.ts";
import { type Command, decodeCommand, encodeCommand } from "./command.ts";

Deno.test("the same command always encodes to the same bytes", () => {
  const c: Command = { op: "put", key: "naïve-κλειδί", value: "значение 🚀" };
  const a = encodeCommand(c), b = encodeCommand({ ...c });
  assertEquals(a, b);
  assertEquals(decodeCommand(a), c);
  assertEquals(decodeCommand(encodeCommand({ op: "del", key: "k" })), { op: "del", key: "k" });
  assertEquals(decodeCommand(encodeCommand({ op: "put", key: "k", value: "" })), {
    op: "put",
    key: "k",
    value: "",
  });
});

Deno.test("decoding refuses truncated, unknown or trailing bytes with a CodecError", () => {
  const good = encodeCommand({ op: "put", key: "key", value: "value" });
  for (let n = 0; n < good.length; n++) {
    assertThrows(() => decodeCommand(good.subarray(0, n)), CodecError);
  }
  assertThrows(() => decodeCommand(new Uint8Array([9, 0, 0, 0, 0])), CodecError, "unknown command");
  assertThrows(() => decodeCommand(new Uint8Array([...good, 0])), CodecError, "trailing");
  const badUtf8 = new Uint8Array([2, 1, 0, 0, 0, 0xff]);
  assertThrows(() => decodeCommand(badUtf8), CodecError, "UTF-8");
});
