// Runs the case file named by $CASES with the @deno/kv npm client on
// Node; $DENO_KV_ESM is the path of its ES module.
import { pathToFileURL } from "node:url";

const env = process.env;
const { openKv, KvU64 } = await import(pathToFileURL(env.DENO_KV_ESM).href);
const { run } = await import(new URL("./" + env.CASES, import.meta.url).href);
const kv = await openKv(env.BASE + "/kv", { accessToken: env.DENO_KV_ACCESS_TOKEN });
await run(kv, KvU64, { ...env, client: "node" });
kv.close();
console.log("done");
