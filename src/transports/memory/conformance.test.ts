import { describeConformance } from "../../../test/conformance.js";
import { SoftTpm } from "../../softtpm/index.js";
import { memory } from "./index.js";

describeConformance("memory(SoftTpm)", async () => ({ transport: memory({ backend: new SoftTpm() }) }), { localities: true });
