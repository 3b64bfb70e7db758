/**
 * The FF-A conduit: what a normal-world driver calls to reach the FF-A framework (the SMC or HVC
 * instruction, in hardware). One call takes the argument registers x0..x17 and returns the result
 * registers x0..x17, as 64-bit unsigned values (bigints). `FfaBus` (the device side) implements it;
 * `ffaStart` (the CRB start method, the driver side) only ever talks to this interface.
 *
 * Sources: DEN0077A (FF-A v1.2) §2 "Conduit", §13 (x0 = function ID, w1..w7 / x1..x17 arguments);
 * Linux drivers/firmware/arm_ffa/smccc.c (the arm_smccc_1_2 call with x0..x17).
 *
 * @packageDocumentation
 */
import type { MaybePromise } from "../../core/transport.js";

/** Registers in and out of one FF-A call: x0..x17 (18 values; missing ones read as 0). */
export type FfaRegs = readonly bigint[];

/** The number of registers an FF-A v1.2 call carries (x0..x17). */
export const FFA_REG_COUNT = 18;

/** What a driver calls into: the FF-A framework as the normal world sees it. */
export interface FfaConduit {
  /**
   * One FF-A call (an SMC): `regs[0]` is the function ID, the rest its arguments. Resolves to the
   * 18 result registers. A conduit answers every call with a frame (FFA_ERROR for what it refuses);
   * it rejects only when the call cannot be made at all.
   */
  call(regs: FfaRegs): MaybePromise<bigint[]>;
}

/** `regs` padded (or cut) to exactly {@link FFA_REG_COUNT} registers, each masked to 64 bits. */
export function ffaFrame(regs: FfaRegs): bigint[] {
  const out = new Array<bigint>(FFA_REG_COUNT).fill(0n);
  for (let i = 0; i < FFA_REG_COUNT && i < regs.length; i++) out[i] = BigInt.asUintN(64, regs[i] ?? 0n);
  return out;
}

/** The low 32 bits of a register (a `wN` view of `xN`). */
export function w32(x: bigint | undefined): number {
  return Number(BigInt.asUintN(32, x ?? 0n));
}

/** The low 32 bits of a register read as a signed value (FF-A error codes in w2). */
export function s32(x: bigint | undefined): number {
  return Number(BigInt.asIntN(32, x ?? 0n));
}
