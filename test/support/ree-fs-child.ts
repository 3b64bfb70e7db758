/**
 * Child process of test/ree-fs-kill.test.ts: writes numbered 512-byte objects through
 * ReeFs(argv[2]) for ever, round after round. Object `i` of round `r` holds i (u32), r (u32),
 * filler derived from both, and a SHA-256 of the first 480 bytes in its last 32 bytes, so a torn
 * file is detected. It prints `start <round>` (the round it resumes from, one past the highest
 * round on disk) and `ack <round> <i>` after each write resolved (a synchronous write to the pipe).
 */
import { writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { ReeFs } from "../../src/node/ree-fs.js";

const OBJECTS = 8;
const dir = process.argv[2];
if (!dir) throw new Error("usage: ree-fs-child <dir>");
const say = (s: string) => writeSync(1, `${s}\n`);

function object(i: number, round: number): Uint8Array {
  const b = new Uint8Array(512);
  const v = new DataView(b.buffer);
  v.setUint32(0, i);
  v.setUint32(4, round);
  for (let k = 8; k < 480; k++) b[k] = (i * 31 + round * 7 + k) & 0xff;
  b.set(createHash("sha256").update(b.subarray(0, 480)).digest(), 480);
  return b;
}

const fs = new ReeFs(dir);
let round = 0;
for (let i = 0; i < OBJECTS; i++) {
  const d = await fs.read(`obj${i}`);
  if (d && d.length === 512) round = Math.max(round, new DataView(d.buffer, d.byteOffset).getUint32(4) + 1);
}
say(`start ${round}`);
for (;;) {
  for (let i = 0; i < OBJECTS; i++) {
    await fs.write(`obj${i}`, object(i, round));
    say(`ack ${round} ${i}`);
  }
  round++;
}
