// Grants on Deno keys, run by both clients with the token of an identity
// granted rw:team/ only. It writes what it may, and checks that every
// other key is refused with the server's 403 message.
import { assert, assertEq } from "./suite.mjs";

// withTimeout bounds p, and clears its timer so that it keeps no
// process alive.
async function withTimeout(p, ms, what) {
  let timer;
  try {
    return await Promise.race([p, new Promise((_, no) => { timer = setTimeout(() => no(new Error("timed out: " + what)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

// refused runs fn and returns its error message, which must name a 403.
async function refused(fn, what) {
  // @deno/kv reports a refused watch from inside its stream, as an
  // unhandled rejection rather than through the reader: catch that too.
  let hook;
  const unhandled = new Promise((_, no) => { hook = no; });
  const proc = globalThis.process;
  proc?.on?.("unhandledRejection", hook);
  try {
    await withTimeout(Promise.race([fn(), unhandled]), 20_000, what);
  } catch (e) {
    const msg = String(e && e.message || e);
    assert(msg.includes("403"), what + ": not a 403: " + msg);
    console.log("refused " + what + ": " + msg);
    return msg;
  } finally {
    proc?.off?.("unhandledRejection", hook);
  }
  throw new Error(what + ": was not refused");
}

export async function run(kv, KvU64, env) {
  assertEq((await kv.set(["team", "x"], "tuple")).ok, true, "set [team, x]");
  assertEq((await kv.set(["team/x"], new Uint8Array([7]))).ok, true, "set [team/x]");
  assertEq((await kv.get(["team", "x"])).value, "tuple", "get [team, x]");
  assertEq((await kv.get(["team/x"])).value, new Uint8Array([7]), "get [team/x]");
  const listed = [];
  for await (const e of kv.list({ prefix: ["team"] })) listed.push(e.key);
  assertEq(listed, [["team", "x"]], "list [team]");
  const ok = await kv.atomic().check({ key: ["team", "x"], versionstamp: null }).set(["team", "y"], 1).commit();
  assertEq(ok.ok, false, "a check on a readable key runs (and fails: the key exists)");

  const msg = await refused(() => kv.set(["other", "x"], "no"), "set [other, x]");
  assert(msg.includes("no permission to write"), "the reason: " + msg);
  await refused(() => kv.set(["team"], "no"), "set [team] (the string key team)");
  await refused(() => kv.atomic().set(["team", "z"], 1).set(["other"], 2).commit(), "an atomic write with one refused key");
  assertEq((await kv.get(["team", "z"])).value, null, "nothing of the refused write was committed");
  await refused(() => kv.atomic().check({ key: ["other", "x"], versionstamp: null }).set(["team", "z"], 1).commit(), "a check on [other, x]");
  await refused(async () => { for await (const _ of kv.list({ prefix: ["other"] })) {} }, "list [other]");
  if (env.client === "deno") {
    // Deno's get is a read of one key; @deno/kv's is a range from the key
    // to the end, which returns only readable keys (so null here).
    await refused(() => kv.get(["other", "x"]), "get [other, x]");
  } else {
    assertEq((await kv.get(["other", "x"])).value, null, "@deno/kv get [other, x]");
  }
  await refused(async () => {
    const reader = kv.watch([["other", "x"]]).getReader();
    try {
      await reader.read();
    } finally {
      reader.cancel().catch(() => {});
    }
  }, "watch [other, x]");
  console.log("ok grants");
}
