// Runs suite.mjs with the @deno/kv npm client on Node; DENO_KV_ESM is the
// path of its ES module.
import { pathToFileURL } from "node:url";
import { suite } from "./suite.mjs";

const { openKv, KvU64 } = await import(pathToFileURL(process.env.DENO_KV_ESM).href);
const kv = await openKv(process.env.BASE + "/kv", { accessToken: process.env.DENO_KV_ACCESS_TOKEN });
await suite(kv, KvU64, { ...process.env, client: "node" });
kv.close();
console.log("done");
