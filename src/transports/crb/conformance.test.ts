import { describeConformance } from "../../../test/conformance.js";
import { SoftTpm } from "../../softtpm/index.js";
import { CrbDevice } from "../../devices/crb/index.js";
import { crb } from "./crb.js";
import { mmioStart } from "./start-mmio.js";
import { smcStart } from "./start-smc.js";

describeConformance("crb(CrbDevice(SoftTpm), mmioStart)", async () => ({
  transport: crb({ mmio: new CrbDevice({ backend: new SoftTpm() }), start: mmioStart() }),
}));

describeConformance("crb(CrbDevice(SoftTpm, 5 localities), smcStart)", async () => ({
  transport: crb({ mmio: new CrbDevice({ backend: new SoftTpm(), localities: 5 }), start: smcStart({ call: async () => 0 }) }),
}), { localities: true });
