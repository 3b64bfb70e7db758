/** Fuzz targets: caller arguments, the TCTI parser, CLI arguments, FF-A partition messages (see ./run.ts for counts). */
import { fuzzTests } from "./run.js";
import { cliArgs, ffaPartition, tctiParser, tpmArguments } from "./targets.js";

fuzzTests("inputs", [tpmArguments, tctiParser, cliArgs, ffaPartition]);
