/**
 * The shared conformance suite over the whole register-level path:
 * Tpm → Chip → tis() driver → MMIO → TisDevice → SoftTpm.
 */
import { describeConformance } from "../../../test/conformance.js";
import { tis } from "./tis.js";
import { TisDevice } from "../../devices/tis/device.js";
import { SoftTpm } from "../../softtpm/index.js";

describeConformance(
  "tis (polling) over TisDevice(SoftTpm)",
  async () => {
    const device = new TisDevice({ backend: new SoftTpm() });
    return { transport: tis({ mmio: device }) };
  },
  { localities: true, fresh: true },
);

describeConformance(
  "tis (interrupts) over TisDevice(SoftTpm)",
  async () => {
    const device = new TisDevice({ backend: new SoftTpm() });
    return { transport: tis({ mmio: device, interrupts: device }) };
  },
  { localities: true, fresh: true },
);
