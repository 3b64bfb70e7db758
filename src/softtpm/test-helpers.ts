/**
 * Command builders shared by the SoftTpm tests (not part of the public API).
 *
 * @packageDocumentation
 */
import { SoftTpm, type SoftTpmOptions } from "./softtpm.js";

/** Hex of bytes. */
export const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
/** Bytes of hex. */
export const unhex = (h: string): Uint8Array => Uint8Array.from(h.replace(/\s+/g, "").match(/../g) ?? [], (x) => parseInt(x, 16));

/** A u8 as a byte list. */
export const u8 = (v: number): number[] => [v & 0xff];
/** A big-endian u16 as a byte list. */
export const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
/** A big-endian u32 as a byte list. */
export const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
/** A TPM2B (u16 size, then the bytes) as a byte list. */
export const t2b = (b: Uint8Array | number[]): number[] => [...u16(b.length), ...b];

/** A whole command: tag, size, code, body. */
export function cmd(tag: number, cc: number, body: number[] | Uint8Array = []): Uint8Array {
  return Uint8Array.from([...u16(tag), ...u32(10 + body.length), ...u32(cc), ...body]);
}

/** One password session (TPM_RS_PW) with `auth` as the password. */
export function pwSession(auth: Uint8Array | number[] = [], attrs = 1): number[] {
  return [...u32(0x40000009), ...u16(0), attrs, ...t2b(auth)];
}

/** An authorization area holding `sessions`. */
export function authArea(...sessions: number[][]): number[] {
  const body = sessions.flat();
  return [...u32(body.length), ...body];
}

/** A command with sessions: handles, one password session per entry of `auths`, parameters. */
export function authCmd(cc: number, handles: number[], auths: (Uint8Array | number[])[], params: number[] = []): Uint8Array {
  return cmd(0x8002, cc, [...handles.flatMap(u32), ...authArea(...auths.map((a) => pwSession(a))), ...params]);
}

/** The response code of a response. */
export const rcOf = (r: Uint8Array): number => ((r[6]! << 24) | (r[7]! << 16) | (r[8]! << 8) | r[9]!) >>> 0;

/** Reads a big-endian u32 at `at`. */
export const u32At = (r: Uint8Array, at: number): number => ((r[at]! << 24) | (r[at + 1]! << 16) | (r[at + 2]! << 8) | r[at + 3]!) >>> 0;

/** TPMS_NV_PUBLIC inside a TPM2B. */
export function nvPublic(index: number, attrs: number, size: number, nameAlg = 0x000b, policy: number[] = []): number[] {
  const p = [...u32(index), ...u16(nameAlg), ...u32(attrs), ...t2b(policy), ...u16(size)];
  return t2b(p);
}

/** A started SoftTpm (Startup(CLEAR) done) with a fixed seed. */
export function startedTpm(options: SoftTpmOptions = {}): SoftTpm {
  const t = new SoftTpm({ seed: "tests", ...options });
  const r = t.executeSync(STARTUP_CLEAR, 0);
  if (rcOf(r) !== 0) throw new Error(`Startup failed: ${hex(r)}`);
  return t;
}

/** TPM2_Startup(TPM_SU_CLEAR). */
export const STARTUP_CLEAR = cmd(0x8001, 0x144, u16(0));
/** TPM2_Startup(TPM_SU_STATE). */
export const STARTUP_STATE = cmd(0x8001, 0x144, u16(1));
/** TPM2_Shutdown(TPM_SU_CLEAR). */
export const SHUTDOWN_CLEAR = cmd(0x8001, 0x145, u16(0));
/** TPM2_Shutdown(TPM_SU_STATE). */
export const SHUTDOWN_STATE = cmd(0x8001, 0x145, u16(1));

/** PCR_Extend of `pcr` with one digest per [alg, digest]. */
export function pcrExtend(pcr: number, digests: [number, Uint8Array | number[]][], auth: number[] = []): Uint8Array {
  return authCmd(0x182, [pcr], [auth], [...u32(digests.length), ...digests.flatMap(([a, d]) => [...u16(a), ...d])]);
}

/** PCR_Read of one bank with a 24-bit mask. */
export function pcrRead(selections: [number, number][]): Uint8Array {
  return cmd(0x8001, 0x17e, [...u32(selections.length), ...selections.flatMap(([alg, mask]) => [...u16(alg), 3, mask & 0xff, (mask >>> 8) & 0xff, (mask >>> 16) & 0xff])]);
}

/** The digests of a PCR_Read response (after counter and selection). */
export function pcrReadDigests(r: Uint8Array): Uint8Array[] {
  let p = 10 + 4;
  const nsel = u32At(r, p);
  p += 4;
  for (let i = 0; i < nsel; i++) p += 3 + r[p + 2]!;
  const n = u32At(r, p);
  p += 4;
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const sz = (r[p]! << 8) | r[p + 1]!;
    out.push(r.slice(p + 2, p + 2 + sz));
    p += 2 + sz;
  }
  return out;
}
