/**
 * The full TCTI registry: every transport tpmkit has, by its TCTI name, and `openTransport` using
 * it. `tis` and `crb` build the register-level stacks over a fresh SoftTpm
 * (`tis(TisDevice(SoftTpm))`, `crb(CrbDevice(SoftTpm), mmioStart)`); `memory` and `softtpm` the
 * memory transport over SoftTpm (with `state=FILE`, a FileStorage).
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../errors/index.js";
import type { Transport } from "../core/transport.js";
import { SoftTpm } from "../softtpm/softtpm.js";
import { FileStorage } from "../node/file-storage.js";
import { TisDevice } from "../devices/tis/device.js";
import { CrbDevice } from "../devices/crb/device.js";
import { memory } from "../transports/memory/index.js";
import { tis } from "../transports/tis/tis.js";
import { crb } from "../transports/crb/crb.js";
import { mmioStart } from "../transports/crb/start.js";
import { swtpm } from "../transports/swtpm/transport.js";
import { confNum, confStr, defaultTctiRegistry, defineTcti, openTransport as openWith, type OpenTransportOptions, type TctiRegistry } from "./discovery.js";

/** `swtpm:host=H,port=P` or `swtpm:path=SOCK`; defaults 127.0.0.1:2321, the address tcti-swtpm and DEFAULT_DISCOVERY use. */
export const swtpmTcti: TctiRegistry = defineTcti("swtpm", (c) => {
  if (c.path !== undefined) return swtpm({ path: String(c.path) });
  return swtpm({ host: confStr(c.host) ?? "127.0.0.1", port: confNum(c.port) ?? 2321 });
});

/** `memory` and `softtpm[:state=FILE]`: SoftTpm in this process. */
export const softTpmTcti: TctiRegistry = {
  ...defineTcti("memory", () => memory({ backend: new SoftTpm() })),
  ...defineTcti("softtpm", (c) => memory({ backend: new SoftTpm(c.state !== undefined ? { storage: new FileStorage(String(c.state)) } : {}) })),
};

/** `tis` and `crb`: the register-level device models over a fresh SoftTpm. */
export const registerTcti: TctiRegistry = {
  ...defineTcti("tis", () => tis({ mmio: new TisDevice({ backend: new SoftTpm() }) })),
  ...defineTcti("crb", () => crb({ mmio: new CrbDevice({ backend: new SoftTpm() }), start: mmioStart() })),
};

/** Every transport tpmkit has, by TCTI name. */
export const tctiRegistry: TctiRegistry = Object.freeze({ ...defaultTctiRegistry, ...swtpmTcti, ...softTpmTcti, ...registerTcti });

/**
 * Opens the transport a TCTI string names, with every tpmkit transport available; with no
 * string, reads TPM2TOOLS_TCTI / TCTI, then discovers in tpm2-tss's order.
 *
 * @example
 * ```ts
 * const tpm = await Tpm.open(await openTransport("swtpm:host=127.0.0.1,port=2321"));
 * ```
 * @throws TpmArgumentError for a bad string, TctiDiscoveryError when discovery finds nothing
 */
export function openTransport(tcti?: string, options: OpenTransportOptions = {}): Promise<Transport> {
  return openWith(tcti, { ...options, registry: options.registry ?? tctiRegistry });
}

/** Throws unless `name` is a registered TCTI. */
export function assertTcti(name: string): void {
  if (!Object.prototype.hasOwnProperty.call(tctiRegistry, name)) throw new TpmArgumentError(`unknown TCTI "${name}" (known: ${Object.keys(tctiRegistry).join(", ")})`);
}
