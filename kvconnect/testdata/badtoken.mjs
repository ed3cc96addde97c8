// Opened by deno.ts and node.mjs with a token the server refuses: the
// open itself must fail, and the runner prints the error.
export async function run() {
  throw new Error("the database opened with a refused token");
}
