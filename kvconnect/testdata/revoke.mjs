// A token revoked while the database is open: writes, says READY, waits
// until the Go test has removed its token from the token file and
// reloaded it (the file $REVOKED exists), then expects the next call to
// fail with the server's 401.
import { existsSync } from "node:fs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function run(kv, KvU64, env) {
  await kv.set(["revoke", "a"], "before");
  console.log("READY");
  const deadline = Date.now() + 30_000;
  while (!existsSync(env.REVOKED)) {
    if (Date.now() > deadline) throw new Error("never revoked");
    await sleep(50);
  }
  let timer;
  try {
    await Promise.race([kv.get(["revoke", "a"]),
      new Promise((_, no) => { timer = setTimeout(() => no(new Error("timed out")), 20_000); })]);
  } catch (e) {
    console.log("REFUSED " + (e && e.message || e));
    return;
  } finally {
    clearTimeout(timer);
  }
  throw new Error("a revoked token still reads");
}
