/**
 * Child process of test/durability.test.ts and bench/durability.mjs: opens a SoftTpm over
 * FileStorage(argv[2]) through the memory transport, defines an 8-byte NV index once, then writes
 * an incrementing counter to it for ever. It prints `start <n>` with the counter it found, and
 * `ack <n>` the moment each write's response has arrived (a synchronous write to the pipe), so
 * the parent knows exactly what was acknowledged when it sends SIGKILL.
 */
import { writeSync } from "node:fs";
import { FileStorage, SoftTpm, Tpm, memory } from "../../src/index.js";

const INDEX = 0x01500010;
const path = process.argv[2];
if (!path) throw new Error("usage: durability-child <state file>");
const say = (s: string) => writeSync(1, `${s}\n`);

const tpm = await Tpm.open(memory({ backend: new SoftTpm({ storage: new FileStorage(path) }) }));
try {
  await tpm.nvReadPublic(INDEX);
} catch {
  await tpm.nvDefineSpace({ index: INDEX, size: 8 });
  say("defined");
}
let v = 0n;
try {
  const d = await tpm.nvRead(INDEX, { authHandle: "owner" });
  v = new DataView(d.buffer, d.byteOffset, 8).getBigUint64(0);
} catch {
  v = 0n; // defined, never written (a kill between the two)
}
say(`start ${v}`);
const buf = new Uint8Array(8);
for (;;) {
  v++;
  new DataView(buf.buffer).setBigUint64(0, v);
  await tpm.nvWrite(INDEX, buf, { authHandle: "owner" });
  say(`ack ${v}`);
}
