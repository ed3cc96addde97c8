// Writes a Deno.KvU64 under ["ev/u"], adds to it with sum, and deletes
// it, with Deno's built-in KV client: TestEventNamesOfDenoKV subscribes to
// the keyspace events these make.
const kv = await Deno.openKv(Deno.env.get("BASE") + "/kv");
await kv.set(["ev/u"], new Deno.KvU64(1n));
const res = await kv.atomic().sum(["ev/u"], 5n).commit();
if (!res.ok) throw new Error("sum not committed");
const got = await kv.get(["ev/u"]);
if (got.value?.value !== 6n) throw new Error("sum: " + String(got.value));
await kv.delete(["ev/u"]);
kv.close();
console.log("done");
