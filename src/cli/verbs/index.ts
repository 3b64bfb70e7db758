/**
 * The one table of `tpmkit` verbs: each is `src/cli/verbs/<name>.ts`, exporting a {@link Verb}.
 *
 * @packageDocumentation
 */
import type { Verb } from "../verb.js";
import { demo } from "./demo.js";
import { getrandom } from "./getrandom.js";
import { pcrextend } from "./pcrextend.js";
import { serve } from "./serve.js";
import { pcrreadVerb } from "./pcrread.js";
import { getcapVerb } from "./getcap.js";
import { boot } from "./boot.js";

/** Every verb, in the order the global help lists them. */
export const VERBS: readonly Verb<unknown>[] = [demo, getrandom, pcrreadVerb, pcrextend, getcapVerb, serve, boot];

/** The verb called `name`, or undefined. */
export function verbNamed(name: string): Verb<unknown> | undefined {
  return VERBS.find((v) => v.name === name);
}
