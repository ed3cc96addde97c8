// Runs suite.mjs with Deno's built-in KV client.
import { suite } from "./suite.mjs";

const env = Deno.env.toObject();
const kv = await Deno.openKv(env.BASE + "/kv");
await suite(kv, Deno.KvU64, { ...env, client: "deno" });
kv.close();
console.log("done");
