/** Fuzz targets: SoftTpm command dispatch, the state decoder, the typed response parsers (see ./run.ts for counts). */
import { fuzzTests } from "./run.js";
import { softtpmDispatch, stateDecoder, tpmResponses } from "./targets.js";

fuzzTests("parsers", [softtpmDispatch, stateDecoder, tpmResponses]);
