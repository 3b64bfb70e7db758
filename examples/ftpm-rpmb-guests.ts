// The fTPM's NV on an eMMC RPMB partition, as OP-TEE keeps it:
// - the RPMB key is derived from the TEE's hardware unique key (HUK) and the eMMC's CID
//   (deriveRpmbKey, OP-TEE's tee_rpmb_key_gen) and programmed once into the device at the
//   factory; an insecure test build (CFG_RPMB_WRITE_KEY) gives the same key up to the normal world;
// - with the key not programmed the TEE refuses to use RPMB, and the fTPM cannot start;
// - with the key programmed, an NV index written through the fTPM survives a restart of the TEE
//   (a new TEE and a new supplicant over the same RPMB partition);
// - a TEE whose HUK differs (so its key does not match the device's) fails the key check, and the
//   fTPM cannot start.
// Then several guests share one TEE through a hypervisor's mediator (TeeMediator over an OpTee
// built with virtualization): each guest has its own VM id (0 is the hypervisor, guests from 2),
// its own supplicant and storage, and its own fTPM state; one guest's NV index and PCRs are
// invisible to the other, and a destroyed guest's TPM fails with a typed error.
// Everything runs on a FakeClock: no real waiting, the same output every run.
//
// Run: see examples/README.md.
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { pathToFileURL } from "node:url";
import {
  FakeClock,
  OPTEE_DEVICE_CHANNEL,
  OpTee,
  RPMB_RESULT,
  RpmbDevice,
  Supplicant,
  TEE_RESULT,
  TeeError,
  TeeMediator,
  TpmResponseError,
  TpmUnavailableError,
  TaPanicError,
  Tpm,
  type OpTeeTraceEvent,
  deriveRpmbKey,
  ftpmTa,
  ftpmTee,
  rpmbTestKeyRetrieve,
  teeOriginName,
  teeResultName,
  toHex,
} from "../src/index.js";

const HUK = Uint8Array.from({ length: 16 }, (_, i) => 0x40 + i); // OP-TEE's HW_UNIQUE_KEY_LENGTH: 16 bytes
const CID = Uint8Array.from({ length: 16 }, (_, i) => 0x90 + i); // the eMMC's CID register
const NV_INDEX = 0x01500016;

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`not as described: ${what}`);
}

/** One boot of the TEE: OP-TEE with RPMB FS only, the fTPM TA on it, tee-supplicant started. */
async function boot(rpmb: RpmbDevice, huk: Uint8Array) {
  const clock = new FakeClock({ auto: true });
  const supplicant = new Supplicant({ clock });
  const tee = new OpTee({ tas: [ftpmTa({ early: true, storage: "rpmb", seed: "seed-004" })], supplicant, rpmb, huk, rpmbFs: true, reeFs: false, clock });
  await supplicant.start();
  return { clock, supplicant, tee };
}

/** Opens the fTPM on a freshly booted TEE; a TeeError is returned, not thrown. */
async function openTpm(rpmb: RpmbDevice, huk: Uint8Array): Promise<{ tpm: Tpm; stop: () => Promise<void> } | TeeError> {
  const { clock, supplicant, tee } = await boot(rpmb, huk);
  // what the TEE saw inside: the TA's panic and the storage error behind it
  const onEvent = (m: unknown) => {
    const e = m as OpTeeTraceEvent;
    if (e.device === tee && e.type === "panic" && e.cause instanceof TaPanicError) panics.push(e.cause.panicCode);
  };
  panics.length = 0;
  subscribe(OPTEE_DEVICE_CHANNEL, onEvent);
  try {
    const tpm = await Tpm.open(ftpmTee({ tee }), { clock, signal: AbortSignal.timeout(5000) });
    return {
      tpm,
      stop: async () => {
        await tpm.close();
        await supplicant.stop();
      },
    };
  } catch (e) {
    await supplicant.stop();
    if (e instanceof TeeError) return e;
    throw e;
  } finally {
    unsubscribe(OPTEE_DEVICE_CHANNEL, onEvent);
  }
}

/** The TEE_Panic codes of the last {@link openTpm}. */
const panics: number[] = [];
const panicText = () => panics.map((c) => `${teeResultName(c)} (0x${c.toString(16)})`).join(", ");

const describe = (e: TeeError) => `TeeError 0x${e.teeCode.toString(16)} ${teeResultName(e.teeCode)}, origin ${teeOriginName(e.origin)}`;

/** Runs the example; `log` receives each output line. */
export async function main(log: (line: string) => void = console.log): Promise<void> {
  // The key, two ways: derived from the HUK and the CID, and retrieved from a test build.
  const key = deriveRpmbKey(HUK, CID);
  const retrieved = await rpmbTestKeyRetrieve({ key, writeKey: true, cid: CID });
  log(`RPMB key from HUK and CID: ${toHex(key).slice(0, 16)}… (${key.length} bytes), test build gives the same: ${toHex(retrieved) === toHex(key)}`);
  check(key.length === 32 && toHex(retrieved) === toHex(key), "the derived and the retrieved key are the same 32 bytes");

  // A device whose key was never programmed: OP-TEE (without CFG_RPMB_WRITE_KEY) will not use it.
  const blank = new RpmbDevice({ cid: CID });
  const unprogrammed = await openTpm(blank, HUK);
  check(unprogrammed instanceof TeeError, "the fTPM cannot start on an unprogrammed RPMB");
  log(`unprogrammed RPMB key: Tpm.open fails, ${describe(unprogrammed as TeeError)}`);
  // RPMB FS answers STORAGE_NOT_AVAILABLE; the fTPM gives up reading its NV and panics itself
  log(`  inside the TEE: the fTPM TA panicked with ${panicText()}`);
  check((unprogrammed as TeeError).teeCode === TEE_RESULT.TARGET_DEAD && panics[0] === TEE_RESULT.BAD_STATE, "unprogrammed: the TA panics with BAD_STATE");

  // The factory step, then the first boot: the fTPM manufactures itself and an NV index is written.
  const rpmb = new RpmbDevice({ cid: CID });
  const programmed = rpmb.programKey(key);
  check(programmed === RPMB_RESULT.OK, "the key is programmed");
  check(rpmb.programKey(key) !== RPMB_RESULT.OK, "the key is programmed only once");
  log(`key programmed: result ${programmed} (OK); programming it again is refused`);
  const first = await openTpm(rpmb, HUK);
  if (first instanceof TeeError) throw first;
  const data = new TextEncoder().encode("kept on RPMB");
  await first.tpm.nvDefineSpace({ index: NV_INDEX, size: data.length });
  await first.tpm.nvWrite(NV_INDEX, data);
  await first.stop();
  log(`boot 1: NV index 0x${NV_INDEX.toString(16)} written, RPMB write counter ${rpmb.state.writeCounter}`);

  // A restart of the TEE (new TEE, new supplicant, same partition): the NV index is still there.
  const second = await openTpm(rpmb, HUK);
  if (second instanceof TeeError) throw second;
  const read = await second.tpm.nvRead(NV_INDEX);
  await second.stop();
  log(`boot 2 (TEE restarted): NV index 0x${NV_INDEX.toString(16)} reads "${new TextDecoder().decode(read)}"`);
  check(toHex(read) === toHex(data), "NV survives a TEE restart");

  // A TEE with another HUK derives another key: the device's MAC does not verify.
  const otherHuk = HUK.map((b) => b ^ 0xff);
  const wrong = await openTpm(rpmb, otherHuk);
  check(wrong instanceof TeeError, "the fTPM cannot start with a wrong RPMB key");
  log(`wrong RPMB key (another HUK): Tpm.open fails, ${describe(wrong as TeeError)}`);
  // RPMB FS answers SECURITY (the device's MAC does not verify), a code a read may not return: the core panics the TA
  log(`  inside the TEE: the fTPM TA panicked with ${panicText()}`);
  check((wrong as TeeError).teeCode === TEE_RESULT.TARGET_DEAD && panics[0] === TEE_RESULT.SECURITY, "a wrong key: the TA panics with SECURITY");

  await guests(log);
}

/** Two guests of one TEE, each with its own fTPM. */
async function guests(log: (line: string) => void): Promise<void> {
  const clock = new FakeClock({ auto: true });
  const tee = new OpTee({ tas: [ftpmTa({ early: true, storage: "ree", seed: "seed-004-guests" })], huk: HUK, virtualization: true, clock, channel: false });
  const mediator = new TeeMediator(tee, { clock, channel: false });
  const a = await mediator.createGuest(); // its own started supplicant and in-memory REE FS
  const b = await mediator.createGuest();
  log(`guests: VM ids ${a.vmId} and ${b.vmId}, OP-TEE partitions ${tee.guestIds.join(", ")}, supplicants ${a.supplicant?.state} / ${b.supplicant?.state}`);
  check(a.vmId === 2 && b.vmId === 3 && tee.guestIds.join() === "2,3", "guests get VM ids from 2");

  const tpmA = await Tpm.open(ftpmTee({ tee: a }), { clock, signal: AbortSignal.timeout(5000) });
  const tpmB = await Tpm.open(ftpmTee({ tee: b }), { clock, signal: AbortSignal.timeout(5000) });
  // guest A writes an NV index and extends PCR 16; guest B does neither
  const secret = new TextEncoder().encode("guest A only");
  await tpmA.nvDefineSpace({ index: NV_INDEX, size: secret.length });
  await tpmA.nvWrite(NV_INDEX, secret);
  await tpmA.pcrExtend(16, { sha256: new Uint8Array(32).fill(0xa) });
  const pcrA = (await tpmA.pcrRead({ sha256: [16] })).sha256![16]!;
  const pcrB = (await tpmB.pcrRead({ sha256: [16] })).sha256![16]!;
  log(`PCR 16: guest A ${toHex(pcrA).slice(0, 16)}…, guest B ${toHex(pcrB).slice(0, 16)}…`);
  check(toHex(pcrB) === "00".repeat(32) && toHex(pcrA) !== toHex(pcrB), "guest A's extend is not in guest B's PCR 16");
  try {
    await tpmB.nvRead(NV_INDEX);
    check(false, "guest B cannot read guest A's NV index");
  } catch (e) {
    if (!(e instanceof TpmResponseError)) throw e;
    log(`guest B reads NV index 0x${NV_INDEX.toString(16)}: ${e.rcName}`);
  }

  // destroying guest A: its TPM fails with a typed error; guest B carries on
  await mediator.destroyGuest(a);
  try {
    await tpmA.getRandom(8);
    check(false, "a destroyed guest's TPM fails");
  } catch (e) {
    if (!(e instanceof TpmUnavailableError)) throw e;
    log(`after destroyGuest(A): guest A's getRandom fails with ${e.name}, readiness ${tpmA.chip.readiness}; partitions left ${tee.guestIds.join(", ")}`);
  }
  const random = await tpmB.getRandom(8);
  log(`guest B still works: getRandom(8) = ${toHex(random)}`);
  check(tee.guestIds.join() === "3" && random.length === 8, "guest B is untouched");
  await tpmA.close();
  await tpmB.close();
  await mediator.destroyGuest(b);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
