// The KV Connect suite, run by both real clients (deno.ts for Deno's
// built-in client, node.mjs for @deno/kv on Node) against one server. It
// throws on the first difference from what Deno KV promises; the Go test
// reads its output.

export function assert(cond, msg) {
  if (!cond) throw new Error("assertion failed: " + msg);
}

export function assertEq(got, want, msg) {
  const g = show(got), w = show(want);
  if (g !== w) throw new Error(`${msg}: got ${g}, want ${w}`);
}

function show(v) {
  return JSON.stringify(v, (_, x) => {
    if (typeof x === "bigint") return x.toString() + "n";
    if (x instanceof Uint8Array) return "bytes:" + Array.from(x).join(",");
    return x;
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// run runs the cases; env holds what the Go test passes: client ("deno"
// or "node"), P (this run's first key part), BASE (the server's URL).
export async function run(kv, KvU64, env) {
  const P = env.P;
  const cases = [];
  const t = (name, fn) => cases.push([name, fn]);

  t("set and get every value kind", async () => {
    const values = ["hello", 42, -1.5, true, null, { a: [1, "x"] }, [1, 2, 3], 123n,
      new Uint8Array([0, 1, 255]), new KvU64(10n), new Date(1700000000000)];
    for (const [i, v] of values.entries()) {
      const r = await kv.set([P, "val", i], v);
      assert(r.ok && /^[0-9a-f]{20}$/.test(r.versionstamp), "set result " + show(r));
      const e = await kv.get([P, "val", i]);
      assertEq(e.key, [P, "val", i], "key");
      assertEq(e.versionstamp, r.versionstamp, "versionstamp");
      if (v instanceof KvU64) assertEq(e.value.value, v.value, "u64");
      else if (v instanceof Date) assertEq(e.value.getTime(), v.getTime(), "date");
      else assertEq(e.value, v, "value " + i);
    }
    const miss = await kv.get([P, "val", "missing"]);
    assertEq(miss.value, null, "missing value");
    assertEq(miss.versionstamp, null, "missing versionstamp");
  });

  t("delete", async () => {
    await kv.set([P, "del"], "x");
    await kv.delete([P, "del"]);
    assertEq((await kv.get([P, "del"])).value, null, "deleted");
    await kv.delete([P, "del", "never"]); // absent: no error
  });

  t("keys of every part type, in Deno's order", async () => {
    const parts = [new Uint8Array([1]), new Uint8Array([]), "", "a", "a\u0000b", "b", -5n, 0n, 1n, 300n,
      2n ** 70n, -(2n ** 70n), -1.5, 0, 1, 2.5, false, true];
    for (const p of parts) await kv.set([P, "order", p], "v");
    const got = [];
    for await (const e of kv.list({ prefix: [P, "order"] })) got.push(e.key[2]);
    const want = [new Uint8Array([]), new Uint8Array([1]), "", "a", "a\u0000b", "b",
      -(2n ** 70n), -5n, 0n, 1n, 300n, 2n ** 70n, -1.5, 0, 1, 2.5, false, true];
    assertEq(got, want, "order");
  });

  t("getMany", async () => {
    await kv.set([P, "gm", 1], "one");
    await kv.set([P, "gm", 3], "three");
    const es = await kv.getMany([[P, "gm", 1], [P, "gm", 2], [P, "gm", 3]]);
    assertEq(es.map((e) => e.value), ["one", null, "three"], "getMany");
  });

  t("list: prefix, start/end, reverse, limit, cursor", async () => {
    for (let i = 0; i < 25; i++) await kv.set([P, "ls", i], i);
    await kv.set([P, "ls"], "the prefix itself is not listed");
    await kv.set([P, "lt"], "after");
    const vals = async (sel, opts) => {
      const out = [];
      for await (const e of kv.list(sel, opts)) out.push(e.value);
      return out;
    };
    const all = [...Array(25).keys()];
    assertEq(await vals({ prefix: [P, "ls"] }), all, "prefix");
    assertEq(await vals({ prefix: [P, "ls"] }, { limit: 5 }), all.slice(0, 5), "limit");
    assertEq(await vals({ start: [P, "ls", 5], end: [P, "ls", 9] }), [5, 6, 7, 8], "start/end");
    assertEq(await vals({ prefix: [P, "ls"], start: [P, "ls", 20] }), [20, 21, 22, 23, 24], "prefix+start");
    assertEq(await vals({ prefix: [P, "ls"], end: [P, "ls", 3] }), [0, 1, 2], "prefix+end");
    assertEq(await vals({ start: [P, "ls", 0], end: [P, "ls", 25] }, { reverse: true }), all.slice().reverse(), "reverse");
    assertEq(await vals({ start: [P, "ls", 0], end: [P, "ls", 25] }, { reverse: true, limit: 3 }), [24, 23, 22], "reverse limit");
    assertEq(await vals({ prefix: [P, "ls"] }, { batchSize: 4 }), all, "small batches");
    // Pagination with a cursor.
    let cursor, pages = [];
    for (;;) {
      const it = kv.list({ prefix: [P, "ls"] }, { limit: 10, cursor });
      const page = [];
      for await (const e of it) page.push(e.value);
      pages.push(page);
      if (page.length < 10) break;
      cursor = it.cursor;
      if (pages.length > 5) throw new Error("pagination does not end");
    }
    assertEq(pages.flat(), all, "pages");
  });

  t("atomic checks: current, stale, absent; one versionstamp for all", async () => {
    const a = await kv.set([P, "at", "a"], 1);
    let r = await kv.atomic().check({ key: [P, "at", "a"], versionstamp: a.versionstamp })
      .check({ key: [P, "at", "b"], versionstamp: null })
      .set([P, "at", "a"], 2).set([P, "at", "b"], 3).set([P, "at", "c"], 4).commit();
    assert(r.ok, "current + absent checks commit");
    const es = await kv.getMany([[P, "at", "a"], [P, "at", "b"], [P, "at", "c"]]);
    assertEq(es.map((e) => e.versionstamp), [r.versionstamp, r.versionstamp, r.versionstamp], "one versionstamp");
    r = await kv.atomic().check({ key: [P, "at", "a"], versionstamp: a.versionstamp }).set([P, "at", "a"], 99).commit();
    assertEq(r.ok, false, "stale check fails");
    r = await kv.atomic().check({ key: [P, "at", "b"], versionstamp: null }).set([P, "at", "d"], 99).commit();
    assertEq(r.ok, false, "absent check on a present key fails");
    assertEq((await kv.get([P, "at", "a"])).value, 2, "nothing written by a failed check");
    assertEq((await kv.get([P, "at", "d"])).value, null, "nothing written by a failed check (d)");
  });

  t("sum, min, max with wrap-around; a mismatch commits nothing", async () => {
    const k = (n) => [P, "num", n];
    await kv.atomic().sum(k("s"), 5n).commit(); // absent: the operand
    await kv.atomic().sum(k("s"), 7n).commit();
    assertEq((await kv.get(k("s"))).value.value, 12n, "sum");
    await kv.set(k("w"), new KvU64(2n ** 64n - 2n));
    await kv.atomic().sum(k("w"), 5n).commit();
    assertEq((await kv.get(k("w"))).value.value, 3n, "wrapping sum");
    await kv.atomic().max(k("mx"), 4n).max(k("mx"), 9n).max(k("mx"), 2n).commit();
    assertEq((await kv.get(k("mx"))).value.value, 9n, "max");
    await kv.atomic().min(k("mn"), 4n).min(k("mn"), 9n).min(k("mn"), 2n).commit();
    assertEq((await kv.get(k("mn"))).value.value, 2n, "min");
    await kv.set(k("str"), "not a number");
    let failed = false;
    try {
      await kv.atomic().set(k("first"), "x").sum(k("str"), 1n).commit();
    } catch (e) {
      failed = true;
      assert(/not a Deno.KvU64/.test(String(e)), "the server's message: " + e);
    }
    assert(failed, "sum on a string fails");
    assertEq((await kv.get(k("first"))).value, null, "nothing committed before the failing sum");
    assertEq((await kv.get(k("str"))).value, "not a number", "string intact");
  });

  t("expireIn", async () => {
    await kv.set([P, "exp"], "soon", { expireIn: 300 });
    await kv.set([P, "stay"], "later", { expireIn: 60_000 });
    assertEq((await kv.get([P, "exp"])).value, "soon", "before expiry");
    await sleep(700);
    assertEq((await kv.get([P, "exp"])).value, null, "after expiry");
    assertEq((await kv.get([P, "stay"])).value, "later", "not expired");
  });

  t("big values and keys", async () => {
    const big = new Uint8Array(60 * 1024).map((_, i) => i % 251);
    await kv.set([P, "big"], big);
    assertEq((await kv.get([P, "big"])).value.length, big.length, "60 KiB value");
    const longKey = [P, "k".repeat(2000 - P.length - 10)];
    await kv.set(longKey, "long");
    assertEq((await kv.get(longKey)).value, "long", "2000-byte key");
  });

  t("a sum of a number is refused, and commits nothing", async () => {
    let msg = "";
    try {
      await kv.atomic().set([P, "v8sum", "a"], "x").mutate({ type: "sum", key: [P, "v8sum", "n"], value: 5 }).commit();
    } catch (e) {
      msg = String(e);
    }
    assert(/400/.test(msg) && /not supported/.test(msg), "refused with the server's reason: " + msg);
    assertEq((await kv.get([P, "v8sum", "a"])).value, null, "nothing committed");
  });

  if (typeof kv.commitVersionstamp === "function") {
    // Only Deno's client has commitVersionstamp; @deno/kv 0.14.0 does not.
    t("commitVersionstamp keys", async () => {
      const r = await kv.atomic().set([P, "vs", kv.commitVersionstamp()], "stamped").set([P, "vs2"], "b").commit();
      const es = [];
      for await (const e of kv.list({ prefix: [P, "vs"] })) es.push(e);
      assertEq(es.map((e) => [e.key[2], e.value, e.versionstamp]), [[r.versionstamp, "stamped", r.versionstamp]], "stamped key");
      assertEq((await kv.get([P, "vs2"])).versionstamp, r.versionstamp, "same commit");
    });
  }

  if (env.client === "node") {
    // Deno's own client refuses enqueue before sending; @deno/kv sends it.
    t("enqueue is refused with a reason", async () => {
      let msg = "";
      try {
        await kv.enqueue({ job: 1 });
      } catch (e) {
        msg = String(e);
      }
      assert(/400/.test(msg) && /enqueue is not supported/.test(msg), "refused: " + msg);
    });
  }

  const only = env.ONLY ? new RegExp(env.ONLY) : null;
  for (const [name, fn] of cases) {
    if (only && !only.test(name)) continue;
    try {
      await fn();
    } catch (e) {
      throw new Error(`${env.client}: ${name}: ${e && e.stack || e}`);
    }
    console.log("ok " + name);
  }
}
