/**
 * The TCG PC Client binary event log (what firmware hands the OS, e.g. Linux's
 * /sys/kernel/security/tpm0/binary_bios_measurements): parsing and replay against PCRs.
 *
 * Format, from the TCG PC Client Platform Firmware Profile Specification (PFP), Family 2.0,
 * Level 00 Revision 1.05: every field is little-endian (the UEFI byte order, PFP §10.2), unlike
 * the TPM wire format.
 *
 * - A crypto-agile log (PFP §10.2.1, §10.4.5.1) starts with one `TCG_PCClientPCREvent` (SHA-1
 *   format: pcrIndex u32, eventType u32, digest[20], eventDataSize u32, event) of type
 *   EV_NO_ACTION whose data is a `TCG_EfiSpecIdEvent` with the signature "Spec ID Event03"
 *   (platformClass u32, specVersionMinor u8, specVersionMajor u8, specErrata u8, uintnSize u8,
 *   numberOfAlgorithms u32, then per algorithm algorithmId u16 and digestSize u16, then
 *   vendorInfoSize u8 and vendorInfo). Every later event is a `TCG_PCR_EVENT2` (PFP §10.2.2):
 *   pcrIndex u32, eventType u32, a TPML_DIGEST_VALUES (count u32, then per digest hashAlg u16
 *   and the digest, whose size comes from the Spec ID event), eventSize u32, event.
 * - A log whose first event is not a Spec ID Event03 is a legacy SHA-1 log: every event is a
 *   `TCG_PCClientPCREvent` (PFP §10.2.1).
 *
 * Replay (PFP §10.4.5 and TPM 2.0 Part 3 §22.2 TPM2_PCR_Extend): each PCR starts at zeros,
 * except PCR 0 after a StartupLocality event (PFP §10.4.5.3: locality 3 or 4 sets the last byte
 * of PCR 0's initial value to that locality); every event but EV_NO_ACTION is extended,
 * `new = H(old ‖ digest)`.
 *
 * @packageDocumentation
 */
import { sha1 } from "@noble/hashes/legacy.js";
import { sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { TpmArgumentError, TpmFormatError } from "../errors/index.js";
import { toHex } from "./buffer.js";
import { hashName, type HashAlgName } from "./types.js";

/**
 * Event types with their values, TCG PC Client PFP §10.4.1 (Table 9, "Events"). EV_EFI_* values
 * are EV_EFI_EVENT_BASE (0x80000000) plus an offset.
 */
export const EV = {
  EV_PREBOOT_CERT: 0x00000000,
  EV_POST_CODE: 0x00000001,
  EV_UNUSED: 0x00000002,
  EV_NO_ACTION: 0x00000003,
  EV_SEPARATOR: 0x00000004,
  EV_ACTION: 0x00000005,
  EV_EVENT_TAG: 0x00000006,
  EV_S_CRTM_CONTENTS: 0x00000007,
  EV_S_CRTM_VERSION: 0x00000008,
  EV_CPU_MICROCODE: 0x00000009,
  EV_PLATFORM_CONFIG_FLAGS: 0x0000000a,
  EV_TABLE_OF_DEVICES: 0x0000000b,
  EV_COMPACT_HASH: 0x0000000c,
  EV_IPL: 0x0000000d,
  EV_IPL_PARTITION_DATA: 0x0000000e,
  EV_NONHOST_CODE: 0x0000000f,
  EV_NONHOST_CONFIG: 0x00000010,
  EV_NONHOST_INFO: 0x00000011,
  EV_OMIT_BOOT_DEVICE_EVENTS: 0x00000012,
  EV_EFI_EVENT_BASE: 0x80000000,
  EV_EFI_VARIABLE_DRIVER_CONFIG: 0x80000001,
  EV_EFI_VARIABLE_BOOT: 0x80000002,
  EV_EFI_BOOT_SERVICES_APPLICATION: 0x80000003,
  EV_EFI_BOOT_SERVICES_DRIVER: 0x80000004,
  EV_EFI_RUNTIME_SERVICES_DRIVER: 0x80000005,
  EV_EFI_GPT_EVENT: 0x80000006,
  EV_EFI_ACTION: 0x80000007,
  EV_EFI_PLATFORM_FIRMWARE_BLOB: 0x80000008,
  EV_EFI_HANDOFF_TABLES: 0x80000009,
  EV_EFI_PLATFORM_FIRMWARE_BLOB2: 0x8000000a,
  EV_EFI_HANDOFF_TABLES2: 0x8000000b,
  EV_EFI_VARIABLE_BOOT2: 0x8000000c,
  EV_EFI_HCRTM_EVENT: 0x80000010,
  EV_EFI_VARIABLE_AUTHORITY: 0x800000e0,
  EV_EFI_SPDM_FIRMWARE_BLOB: 0x800000e1,
  EV_EFI_SPDM_FIRMWARE_CONFIG: 0x800000e2,
} as const;

const EV_NAMES = /* @__PURE__ */ new Map<number, string>(/* @__PURE__ */ Object.entries(EV).map(([k, v]) => [v, k]));

/** The PFP name of an event type (e.g. `"EV_SEPARATOR"`), or `"EV_UNKNOWN_0x…"`. */
export function eventTypeName(type: number): string {
  return EV_NAMES.get(type) ?? `EV_UNKNOWN_0x${(type >>> 0).toString(16).padStart(8, "0")}`;
}

/** The signature of the crypto-agile log's first event, PFP §10.4.5.1 (16 bytes with the NUL). */
export const SPEC_ID_EVENT03_SIGNATURE = "Spec ID Event03";
/** The signature of the StartupLocality EV_NO_ACTION event, PFP §10.4.5.3 (16 bytes with the NUL). */
export const STARTUP_LOCALITY_SIGNATURE = "StartupLocality";

/** One algorithm of the Spec ID event's list (`TCG_EfiSpecIdEventAlgorithmSize`). */
export interface EventLogAlgorithm {
  /** TPM_ALG_ID. */
  algorithmId: number;
  /** Name when it is a hash tpmkit knows. */
  name: HashAlgName | undefined;
  /** Digest size in bytes, as the log declares it. */
  digestSize: number;
}

/** The Spec ID Event03 content (`TCG_EfiSpecIdEvent`, PFP §10.4.5.1). */
export interface SpecIdEvent {
  platformClass: number;
  specVersionMinor: number;
  specVersionMajor: number;
  specErrata: number;
  uintnSize: number;
  algorithms: EventLogAlgorithm[];
  vendorInfo: Uint8Array;
}

/** One digest of an event. */
export interface EventDigest {
  /** TPM_ALG_ID. */
  algorithmId: number;
  /** Name when it is a hash tpmkit knows. */
  name: HashAlgName | undefined;
  digest: Uint8Array;
}

/** One parsed event. */
export interface LogEvent {
  /** Position in the log, 0 for the first event (the Spec ID event of a crypto-agile log). */
  index: number;
  /** Byte offset of the event's first byte in the log. */
  offset: number;
  pcrIndex: number;
  eventType: number;
  /** {@link eventTypeName} of `eventType`. */
  eventTypeName: string;
  digests: EventDigest[];
  /** The event data (a view into the log). */
  data: Uint8Array;
}

/** A parsed event log. */
export interface EventLog {
  /** `"crypto-agile"` (Spec ID Event03 first) or `"sha1"` (legacy TCG_PCClientPCREvent only). */
  format: "crypto-agile" | "sha1";
  /** The Spec ID event of a crypto-agile log. */
  specId: SpecIdEvent | undefined;
  /** Every event, the header event included (index 0). */
  events: LogEvent[];
  /** The locality of a StartupLocality event (PFP §10.4.5.3), if the log has one. */
  startupLocality: number | undefined;
}

/** A little-endian cursor whose every read says which event and offset ran short. */
class LeReader {
  offset = 0;
  event = 0;
  eventOffset = 0;
  constructor(readonly bytes: Uint8Array) {}
  get remaining(): number {
    return this.bytes.length - this.offset;
  }
  need(n: number, what: string): void {
    if (n > this.remaining) {
      throw new TpmFormatError(
        `event log truncated: event ${this.event} (at offset ${this.eventOffset}): ${what} needs ${n} bytes at offset ${this.offset}, ${this.remaining} left`,
      );
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.offset++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const b = this.bytes, o = this.offset;
    this.offset += 2;
    return b[o]! | (b[o + 1]! << 8);
  }
  u32(what: string): number {
    this.need(4, what);
    const b = this.bytes, o = this.offset;
    this.offset += 4;
    return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
  }
  take(n: number, what: string): Uint8Array {
    this.need(n, what);
    const v = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  fail(what: string): never {
    throw new TpmFormatError(`event log: event ${this.event} (at offset ${this.eventOffset}): ${what}`);
  }
}

/** Does `data` start with the 16-byte NUL-terminated `sig`? */
function hasSignature(data: Uint8Array, sig: string): boolean {
  if (data.length < 16) return false;
  for (let i = 0; i < 16; i++) if (data[i] !== (i < sig.length ? sig.charCodeAt(i) : 0)) return false;
  return true;
}

/** A digest algorithm count or size beyond this is not a real log (the TPM has 8 hash algorithms defined; SHA-512 is 64 bytes). */
const MAX_ALGORITHMS = 16;
const MAX_DIGEST_SIZE = 64;

function readSpecId(data: Uint8Array, r: LeReader): SpecIdEvent {
  // Parse the event data with its own cursor; error messages still name the event.
  const d = new LeReader(data);
  d.event = r.event;
  d.eventOffset = r.eventOffset;
  d.take(16, "Spec ID signature");
  const platformClass = d.u32("platformClass");
  const specVersionMinor = d.u8("specVersionMinor");
  const specVersionMajor = d.u8("specVersionMajor");
  const specErrata = d.u8("specErrata");
  const uintnSize = d.u8("uintnSize");
  const n = d.u32("numberOfAlgorithms");
  if (n === 0 || n > MAX_ALGORITHMS) d.fail(`Spec ID numberOfAlgorithms ${n} is not in 1..${MAX_ALGORITHMS}`);
  const algorithms: EventLogAlgorithm[] = [];
  for (let i = 0; i < n; i++) {
    const algorithmId = d.u16("algorithmId");
    const digestSize = d.u16("digestSize");
    if (digestSize === 0 || digestSize > MAX_DIGEST_SIZE) d.fail(`Spec ID digest size ${digestSize} of algorithm 0x${algorithmId.toString(16)} is not in 1..${MAX_DIGEST_SIZE}`);
    if (algorithms.some((a) => a.algorithmId === algorithmId)) d.fail(`Spec ID lists algorithm 0x${algorithmId.toString(16)} twice`);
    algorithms.push({ algorithmId, name: hashName(algorithmId), digestSize });
  }
  const vendorInfoSize = d.u8("vendorInfoSize");
  const vendorInfo = d.take(vendorInfoSize, "vendorInfo");
  return { platformClass, specVersionMinor, specVersionMajor, specErrata, uintnSize, algorithms, vendorInfo };
}

/** Reads a TCG_PCClientPCREvent (SHA-1 format, PFP §10.2.1). */
function readSha1Event(r: LeReader): LogEvent {
  const offset = r.offset;
  r.eventOffset = offset;
  const pcrIndex = r.u32("pcrIndex");
  const eventType = r.u32("eventType");
  const digest = r.take(20, "SHA-1 digest");
  const size = r.u32("eventDataSize");
  const data = r.take(size, "event data");
  return { index: r.event, offset, pcrIndex, eventType, eventTypeName: eventTypeName(eventType), digests: [{ algorithmId: 0x0004, name: "sha1", digest }], data };
}

/** Reads a TCG_PCR_EVENT2 (PFP §10.2.2) with the sizes of the Spec ID event. */
function readEvent2(r: LeReader, spec: SpecIdEvent): LogEvent {
  const offset = r.offset;
  r.eventOffset = offset;
  const pcrIndex = r.u32("pcrIndex");
  const eventType = r.u32("eventType");
  const count = r.u32("TPML_DIGEST_VALUES.count");
  if (count > spec.algorithms.length) r.fail(`digest count ${count} exceeds the ${spec.algorithms.length} algorithms of the Spec ID event`);
  const digests: EventDigest[] = [];
  for (let i = 0; i < count; i++) {
    const algorithmId = r.u16("hashAlg");
    const alg = spec.algorithms.find((a) => a.algorithmId === algorithmId);
    if (!alg) r.fail(`digest algorithm 0x${algorithmId.toString(16)} is not in the Spec ID event's list`);
    if (digests.some((x) => x.algorithmId === algorithmId)) r.fail(`digest algorithm 0x${algorithmId.toString(16)} appears twice`);
    digests.push({ algorithmId, name: alg.name, digest: r.take(alg.digestSize, `digest of algorithm 0x${algorithmId.toString(16)}`) });
  }
  const size = r.u32("eventSize");
  const data = r.take(size, "event data");
  return { index: r.event, offset, pcrIndex, eventType, eventTypeName: eventTypeName(eventType), digests, data };
}

/**
 * Parses a TCG PC Client binary event log, crypto-agile (first event a Spec ID Event03, PFP
 * §10.4.5.1, then TCG_PCR_EVENT2 records, PFP §10.2.2) or legacy SHA-1 (TCG_PCClientPCREvent
 * records only, PFP §10.2.1).
 *
 * Every length is checked against the bytes left before it is used; nothing is read past the end.
 * A log cut exactly between two events parses as the shorter log: the format carries no total
 * length or event count to tell it apart.
 *
 * @param log - The whole log, e.g. the bytes of /sys/kernel/security/tpm0/binary_bios_measurements.
 * @returns The events, the Spec ID content and the StartupLocality, if any.
 * @throws `TpmFormatError` (exported from the package root) for a truncated log or a field that
 *   cannot be right, naming the event index and its byte offset.
 * @throws `TpmArgumentError` when `log` is not a Uint8Array.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { parseEventLog } from "tpmkit";
 * const log = parseEventLog(readFileSync("/sys/kernel/security/tpm0/binary_bios_measurements"));
 * for (const e of log.events) console.log(e.index, e.pcrIndex, e.eventTypeName);
 * ```
 */
export function parseEventLog(log: Uint8Array): EventLog {
  if (!(log instanceof Uint8Array)) throw new TpmArgumentError(`parseEventLog: expected a Uint8Array, got ${typeof log}`);
  const r = new LeReader(log);
  if (log.length === 0) throw new TpmFormatError("event log truncated: event 0 (at offset 0): empty, no header event");
  const first = readSha1Event(r);
  const events: LogEvent[] = [first];
  let specId: SpecIdEvent | undefined;
  if (first.eventType === EV.EV_NO_ACTION && hasSignature(first.data, SPEC_ID_EVENT03_SIGNATURE)) {
    specId = readSpecId(first.data, r);
  }
  let startupLocality: number | undefined;
  while (r.remaining > 0) {
    r.event++;
    const e = specId ? readEvent2(r, specId) : readSha1Event(r);
    if (e.eventType === EV.EV_NO_ACTION && e.pcrIndex === 0 && hasSignature(e.data, STARTUP_LOCALITY_SIGNATURE)) {
      if (e.data.length < 17) r.fail("StartupLocality event has no locality byte");
      startupLocality = e.data[16]!;
    }
    events.push(e);
  }
  return { format: specId ? "crypto-agile" : "sha1", specId, events, startupLocality };
}

const HASHERS: Partial<Record<HashAlgName, (b: Uint8Array) => Uint8Array>> = { sha1, sha256, sha384, sha512 };

/** PCR values per bank and index, the shape `Tpm.pcrRead` returns (e.g. `{ sha256: { 0: … } }`). */
export type EventLogPcrValues = Partial<Record<HashAlgName, Record<number, Uint8Array>>>;

/** The replayed value of one PCR in one bank. */
export interface ReplayedPcr {
  pcr: number;
  bank: HashAlgName;
  /** The value the log predicts. */
  value: Uint8Array;
  /** Indices of the events extended into this PCR in this bank, in order. */
  events: number[];
}

/**
 * A PCR whose actual value differs from the replay.
 *
 * Which event "made the difference" cannot be known from a hash chain: any event may be the
 * wrong one. The rule used here: `eventIndex` is the last event extended into this PCR (the
 * first point at which the replay, being complete, no longer reaches the actual value), or -1
 * when no event touches the PCR (its initial value differs); `events` lists every event that
 * could be at fault. When the actual value equals the replay after an earlier event,
 * `matchesAfterEvent` names it (the log has events the TPM never saw extended, or the PCR was
 * read before the last events); -1 there means the actual value is the initial value.
 */
export interface PcrMismatch {
  pcr: number;
  bank: HashAlgName;
  /** The last event extended into the PCR, or -1 when none was. */
  eventIndex: number;
  expected: Uint8Array;
  actual: Uint8Array;
  /** Every event extended into this PCR in this bank. */
  events: number[];
  /** The event after which the replay equalled the actual value, if any (-1: the initial value). */
  matchesAfterEvent: number | undefined;
}

/** What {@link replayEventLog} returns. */
export interface EventLogReplay {
  /** Replayed values for every PCR an event touches, per bank the log has digests for and tpmkit can hash. */
  pcrs: ReplayedPcr[];
  /** Replayed values in the `Tpm.pcrRead` shape. */
  values: EventLogPcrValues;
  /** Mismatches against the given actual values (empty when none were given or all matched). */
  mismatches: PcrMismatch[];
  /** PCR/bank pairs of the given actual values that were compared. */
  compared: number;
  /** Banks in the log that could not be replayed (a hash tpmkit does not compute, e.g. SM3). */
  skippedBanks: number[];
  /** Events that carry no digest for a replayed bank (their extension is missing from that bank). */
  missingDigests: { eventIndex: number; bank: HashAlgName }[];
}

function extend(h: (b: Uint8Array) => Uint8Array, old: Uint8Array, digest: Uint8Array): Uint8Array {
  const buf = new Uint8Array(old.length + digest.length);
  buf.set(old);
  buf.set(digest, old.length);
  return h(buf);
}

/**
 * Replays an event log: the PCR values it predicts per bank and, given the actual values (e.g.
 * from `Tpm.pcrRead`), the PCRs that differ and the event blamed for each (see
 * {@link PcrMismatch} for the rule).
 *
 * Each PCR starts at zeros; PCR 0 starts at 0…0L after a StartupLocality event with locality L
 * (PFP §10.4.5.3: the H-CRTM or startup locality 3 or 4). EV_NO_ACTION events are not extended
 * (PFP §10.4.1); every other event extends `H(old ‖ digest)` (TPM 2.0 Part 3 §22.2).
 *
 * @param log - A parsed log ({@link parseEventLog}) or its bytes.
 * @param actual - PCR values to compare against; only the PCRs and banks given are compared.
 * @throws `TpmFormatError` when `log` is bytes that do not parse.
 *
 * @example
 * ```ts
 * import { parseEventLog, replayEventLog } from "tpmkit";
 * const replay = replayEventLog(parseEventLog(bytes), await tpm.pcrRead({ sha256: [0, 1, 2, 3, 4, 5, 6, 7] }));
 * for (const m of replay.mismatches) console.log(`PCR ${m.pcr} ${m.bank}: event ${m.eventIndex}`);
 * ```
 */
export function replayEventLog(log: EventLog | Uint8Array, actual?: EventLogPcrValues): EventLogReplay {
  const parsed = log instanceof Uint8Array ? parseEventLog(log) : log;
  const banks: { id: number; name: HashAlgName; size: number }[] = [];
  const skippedBanks: number[] = [];
  const declared = parsed.specId ? parsed.specId.algorithms : [{ algorithmId: 0x0004, name: "sha1" as HashAlgName, digestSize: 20 }];
  for (const a of declared) {
    if (a.name && HASHERS[a.name]) banks.push({ id: a.algorithmId, name: a.name, size: a.digestSize });
    else skippedBanks.push(a.algorithmId);
  }
  // Per bank: pcr -> { value, events, history of values after each event }
  type State = { value: Uint8Array; events: number[]; history: { after: number; value: Uint8Array }[] };
  const state = new Map<HashAlgName, Map<number, State>>();
  const missingDigests: { eventIndex: number; bank: HashAlgName }[] = [];
  const initial = (pcr: number, size: number): Uint8Array => {
    const v = new Uint8Array(size);
    if (pcr === 0 && parsed.startupLocality !== undefined) v[size - 1] = parsed.startupLocality;
    return v;
  };
  for (const b of banks) state.set(b.name, new Map());
  for (const e of parsed.events) {
    if (e.eventType === EV.EV_NO_ACTION) continue;
    for (const b of banks) {
      const d = e.digests.find((x) => x.algorithmId === b.id);
      const pcrs = state.get(b.name)!;
      let s = pcrs.get(e.pcrIndex);
      if (!s) {
        const v = initial(e.pcrIndex, b.size);
        s = { value: v, events: [], history: [{ after: -1, value: v }] };
        pcrs.set(e.pcrIndex, s);
      }
      if (!d) {
        missingDigests.push({ eventIndex: e.index, bank: b.name });
        continue;
      }
      s.value = extend(HASHERS[b.name]!, s.value, d.digest);
      s.events.push(e.index);
      s.history.push({ after: e.index, value: s.value });
    }
  }
  const pcrs: ReplayedPcr[] = [];
  const values: EventLogPcrValues = {};
  for (const b of banks) {
    const bankValues: Record<number, Uint8Array> = {};
    for (const [pcr, s] of [...state.get(b.name)!].sort((x, y) => x[0] - y[0])) {
      pcrs.push({ pcr, bank: b.name, value: s.value, events: s.events });
      bankValues[pcr] = s.value;
    }
    values[b.name] = bankValues;
  }
  const mismatches: PcrMismatch[] = [];
  let compared = 0;
  if (actual) {
    for (const b of banks) {
      const given = actual[b.name];
      if (!given) continue;
      for (const [key, act] of Object.entries(given)) {
        const pcr = Number(key);
        if (!(act instanceof Uint8Array)) throw new TpmArgumentError(`replayEventLog: actual ${b.name} PCR ${key} is not a Uint8Array`);
        compared++;
        const s = state.get(b.name)!.get(pcr);
        const expected = s ? s.value : initial(pcr, b.size);
        if (toHex(expected) === toHex(act)) continue;
        const actHex = toHex(act);
        const hit = s?.history.find((h) => toHex(h.value) === actHex);
        mismatches.push({
          pcr,
          bank: b.name,
          eventIndex: s && s.events.length > 0 ? s.events[s.events.length - 1]! : -1,
          expected,
          actual: act,
          events: s ? [...s.events] : [],
          matchesAfterEvent: hit?.after,
        });
      }
    }
  }
  mismatches.sort((a, b) => a.eventIndex - b.eventIndex || a.pcr - b.pcr);
  return { pcrs, values, mismatches, compared, skippedBanks, missingDigests };
}
