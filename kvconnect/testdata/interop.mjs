// Curl interop: the same keys through the HTTP API (fetch, as curl
// sends) and the KV client. $P is this run's key prefix.
import { assert, assertEq } from "./suite.mjs";

const enc = new TextEncoder(), dec = new TextDecoder();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function run(kv, KvU64, env) {
  const P = env.P, BASE = env.BASE;
  const http = async (path, body, headers = {}) => {
    const r = await fetch(BASE + path, { method: body === undefined ? "GET" : "POST", body, headers });
    return { status: r.status, text: await r.text(), type: r.headers.get("content-type") };
  };
  const step = async (name, fn) => {
    try { await fn(); } catch (e) { throw new Error(`${env.client}: ${name}: ${e && e.stack || e}`); }
    console.log("ok " + name);
  };

  await step("a curl value reads as its bytes", async () => {
    assertEq((await http(`/set/${P}/node-a`, "10.0.0.7:9000")).status, 200, "curl set");
    const e = await kv.get([`${P}/node-a`]);
    assert(e.value instanceof Uint8Array, "a Uint8Array: " + e.value);
    assertEq(dec.decode(e.value), "10.0.0.7:9000", "bytes");
    const etag = (await fetch(BASE + `/get/${P}/node-a`)).headers.get("etag");
    assertEq(BigInt("0x" + e.versionstamp.slice(0, 16)).toString(), etag.replaceAll('"', ""), "versionstamp is the ETag");
  });

  await step("Deno bytes read in curl as those bytes; JS values are marked", async () => {
    await kv.set([`${P}/node-b`], enc.encode("10.0.0.8:9000"));
    const r = await http(`/get/${P}/node-b`);
    assertEq([r.status, r.text, r.type], [200, "10.0.0.8:9000", "application/octet-stream"], "curl get");
    await kv.set([`${P}/js`], "hello");
    const j = await http(`/get/${P}/js`);
    assertEq(j.type, "application/x-deno-kv-v8", "V8 value's type");
    assertEq((await kv.get([`${P}/js`])).value, "hello", "Deno still reads its string");
    const js = JSON.parse((await http(`/get/${P}/js?format=json`)).text);
    assertEq([js.deno_encoding, js.value_encoding], ["v8", "base64"], "JSON view");
    // A curl write over it makes it bytes again.
    await http(`/set/${P}/js`, "plain");
    assertEq(dec.decode((await kv.get([`${P}/js`])).value), "plain", "curl overwrote the JS value");
    await kv.set([`${P}/n`], new KvU64(7n));
    assertEq(JSON.parse((await http(`/get/${P}/n?format=json`)).text).deno_encoding, "le64", "KvU64 marked");
  });

  await step("tuple keys are hidden from curl and ordered with string keys", async () => {
    await kv.set([`${P}/node-a`, "sub"], "tuple");
    await kv.set([P, "node-c"], "tuple");
    const list = (await http(`/list/${P}`)).text.trim().split("\n");
    assertEq(list, [`${P}/js`, `${P}/n`, `${P}/node-a`, `${P}/node-b`], "curl's listing");
    const all = (await http(`/list/`)).text;
    assert(!all.includes("sub") && !all.includes("node-c"), "no tuple key in the full listing: " + all);
    const keys = [];
    for await (const e of kv.list({ start: [`${P}/`], end: [`${P}/zzz`] })) keys.push(e.key);
    assertEq(keys, [[`${P}/js`], [`${P}/n`], [`${P}/node-a`], [`${P}/node-a`, "sub"], [`${P}/node-b`]], "Deno's order");
    const rev = [];
    for await (const e of kv.list({ start: [`${P}/`], end: [`${P}/zzz`] }, { reverse: true, limit: 3 })) rev.push(e.key);
    assertEq(rev, [[`${P}/node-b`], [`${P}/node-a`, "sub"], [`${P}/node-a`]], "Deno's order, reversed");
  });

  await step("ip/ keys are scoped, and owned keys refuse Deno writes", async () => {
    await kv.set(["ip/ssh"], enc.encode("22"));
    const ip = (await http("/ip")).text.trim();
    assertEq((await http(`/get/ip/${ip}/ssh`)).text, "22", "scoped into the caller's address");
    assertEq((await http(`/set/${P}/owned`, "mine", { "X-Owner-Secret": "s3cret" })).status, 200, "owned by curl");
    let msg = "";
    try { await kv.set([`${P}/owned`], "theirs"); } catch (e) { msg = String(e); }
    assert(/403/.test(msg) && /owned/.test(msg), "refused with 403: " + msg);
    assertEq((await http(`/get/${P}/owned`)).text, "mine", "unchanged");
  });

  await step("a Deno watch fires on curl writes, deletes and expiry", async () => {
    const key = [`${P}/leader`];
    // Present when the watch opens: @deno/kv holds back a first frame in
    // which every key is absent, Deno does not.
    await http(`/set/${P}/leader`, "first");
    const reader = kv.watch([key]).getReader();
    let r = await reader.read();
    assertEq(dec.decode(r.value[0].value), "first", "first frame");
    await http(`/set/${P}/leader`, "me");
    r = await reader.read();
    assertEq(dec.decode(r.value[0].value), "me", "curl set seen");
    await http(`/del/${P}/leader`, "");
    r = await reader.read();
    assertEq(r.value[0].value, null, "curl delete seen");
    await kv.set(key, "brief", { expireIn: 300 });
    r = await reader.read();
    assertEq(r.value[0].value, "brief", "Deno set seen");
    r = await reader.read();
    assertEq(r.value[0].value, null, "expiry seen");
    await reader.cancel();
  });

  await step("a curl watch shows Deno writes to shared keys only", async () => {
    const resp = await fetch(BASE + `/watch/${P}/`);
    const reader = resp.body.getReader();
    let text = "";
    const until = async (what) => {
      const deadline = Date.now() + 10_000;
      while (!text.includes(what)) {
        assert(Date.now() < deadline, "no " + what + " in " + text);
        const { value, done } = await reader.read();
        assert(!done, "stream ended");
        text += dec.decode(value);
      }
    };
    await sleep(100);
    await kv.set([`${P}/hidden`, 1], "tuple");
    await kv.set([`${P}/node-b`], enc.encode("10.0.0.9:9000"));
    await until("10.0.0.9:9000");
    assert(!text.includes("hidden"), "tuple key in the stream: " + text);
    await reader.cancel();
  });
}
