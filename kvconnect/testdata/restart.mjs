// Reconnect after a restart: writes, says READY, waits until the Go test
// has restarted the server (the file $RESTARTED exists), then reads and
// writes again with the data-path token it got before.
import { assertEq } from "./suite.mjs";
import { existsSync } from "node:fs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function run(kv, KvU64, env) {
  await kv.set(["restart", "tuple", 1n], "before");
  await kv.set(["restart/shared"], new Uint8Array([1, 2, 3]));
  console.log("READY");
  const deadline = Date.now() + 30_000;
  while (!existsSync(env.RESTARTED)) {
    if (Date.now() > deadline) throw new Error("never restarted");
    await sleep(50);
  }
  assertEq((await kv.get(["restart", "tuple", 1n])).value, "before", "tuple key after restart");
  assertEq((await kv.get(["restart/shared"])).value, new Uint8Array([1, 2, 3]), "shared key after restart");
  const r = await kv.set(["restart", "after"], "x");
  assertEq(r.ok, true, "write after restart");
  console.log("ok restart");
}
