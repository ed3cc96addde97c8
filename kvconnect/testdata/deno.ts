// Runs the case file named by $CASES (suite.mjs, interop.mjs, ...) with
// Deno's built-in KV client.
const env = Deno.env.toObject();
const { run } = await import(new URL("./" + env.CASES, import.meta.url).href);
const kv = await Deno.openKv(env.BASE + "/kv");
await run(kv, Deno.KvU64, { ...env, client: "deno" });
kv.close();
console.log("done");
