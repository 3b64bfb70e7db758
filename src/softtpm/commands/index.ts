/**
 * The SoftTpm dispatch table: every chapter's command handlers (TPM 2.0 Part 3), registered once.
 * A new command goes into its chapter's file, and its TPMA_CC into `COMMAND_ATTRIBUTES`.
 *
 * @packageDocumentation
 */
import { type CommandTable, commandTable } from "../engine/dispatch.js";
import { asymmetricCommands } from "./asymmetric.js";
import { attestationCommands } from "./attestation.js";
import { auditCommands } from "./audit.js";
import { capabilityCommands } from "./capability.js";
import { clockCommands } from "./clock.js";
import { contextCommands } from "./context.js";
import { credentialCommands } from "./credential.js";
import { dictionaryCommands } from "./dictionary.js";
import { duplicationCommands } from "./duplication.js";
import { hashCommands } from "./hash.js";
import { hierarchyCommands } from "./hierarchy.js";
import { nvCommands } from "./nv.js";
import { objectCommands } from "./object.js";
import { pcrCommands } from "./pcr.js";
import { policyCommands } from "./policy.js";
import { randomCommands } from "./random.js";
import { sessionCommands } from "./sessions.js";
import { signatureCommands } from "./signature.js";
import { startupCommands } from "./startup.js";
import { symmetricCommands } from "./symmetric.js";
import { testingCommands } from "./testing.js";

/** Every command SoftTpm implements, by command code. */
export const COMMANDS: CommandTable = /* @__PURE__ */ commandTable(
  startupCommands, // §9
  testingCommands, // §10
  sessionCommands, // §11
  objectCommands, // §12
  credentialCommands, // §12.5, §12.6
  duplicationCommands, // §13
  policyCommands, // §23
  asymmetricCommands, // §14
  symmetricCommands, // §15.2, §15.3, §15.5
  hashCommands, // §15.4, §17
  signatureCommands, // §20
  attestationCommands, // §18, §31.16
  auditCommands, // §18.5, §18.6, §21.2
  randomCommands, // §16
  pcrCommands, // §22
  hierarchyCommands, // §24
  dictionaryCommands, // §25
  contextCommands, // §28
  clockCommands, // §29
  capabilityCommands, // §30
  nvCommands, // §31
);
