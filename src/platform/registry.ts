/**
 * The one TCTI registry: every transport tpmkit has, by its TCTI name. Host transports (`swtpm`,
 * `mssim`, `device`) build their driver; boards (`memory`, `softtpm`, `tis`, `crb`, `crb-ffa`, `ftpm`) build a whole
 * emulated stack ({@link BOARDS}). The library's `openTransport` and the `tpmkit` CLI both use it.
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../errors/index.js";
import { linuxDevice } from "../transports/linux-device/linux-device.js";
import { mssim } from "../transports/mssim/mssim.js";
import { swtpm } from "../transports/swtpm/transport.js";
import { BOARDS } from "./boards.js";
import { confNum, confStr, defineTcti, type TctiRegistry } from "./tcti-parse.js";

/** `swtpm:host=H,port=P` or `swtpm:path=SOCK`; defaults 127.0.0.1:2321, the address tcti-swtpm and DEFAULT_DISCOVERY use. */
export const swtpmTcti: TctiRegistry = /* @__PURE__ */ defineTcti("swtpm", (c) => {
  if (c.path !== undefined) return swtpm({ path: String(c.path) });
  return swtpm({ host: confStr(c.host) ?? "127.0.0.1", port: confNum(c.port) ?? 2321 });
});

/** `mssim:host=..,port=..` or `mssim:path=..` → mssim(). tcti-mssim's defaults: port 2321, platform port + 1. */
export const mssimTcti: TctiRegistry = /* @__PURE__ */ defineTcti("mssim", (c) => mssim({ host: confStr(c.host), port: confNum(c.port), path: confStr(c.path) }));

/** `device:/dev/tpmrm0` → linuxDevice(); `device` alone searches /dev/tpmrm0 then /dev/tpm0. */
export const deviceTcti: TctiRegistry = /* @__PURE__ */ defineTcti("device", (c) => linuxDevice({ path: confStr(c.path) }));

/** The host transports that reach a TPM outside this process over a socket or a device node: mssim and device. */
export const defaultTctiRegistry: TctiRegistry = Object.freeze({ ...mssimTcti, ...deviceTcti });

/** Every transport and board tpmkit has, by TCTI name. */
export const tctiRegistry: TctiRegistry = Object.freeze({
  ...defaultTctiRegistry,
  ...swtpmTcti,
  ...Object.fromEntries(Object.values(BOARDS).map((b) => [b.name, (c: Parameters<typeof b.build>[0]) => b.build(c).transport])),
});

/** Throws unless `name` is a registered TCTI. */
export function assertTcti(name: string): void {
  if (!Object.prototype.hasOwnProperty.call(tctiRegistry, name)) throw new TpmArgumentError(`unknown TCTI "${name}" (known: ${Object.keys(tctiRegistry).join(", ")})`);
}
