// Sessions in the typed client (TPM 2.0 Part 1 §19.6, §21; Part 3 §11.1, §23):
// 1. A salted HMAC session with parameter encryption unseals a secret: the password never crosses
//    the wire (an HMAC proves it) and neither does the secret (AES-128-CFB both ways).
// 2. A policy session satisfies PolicyCommandCode(Unseal) + PolicyAuthValue, the digest the offline
//    policy() helper computed for the object's authPolicy.
// 3. A response changed on the way (one byte of the encrypted data) is refused: the response HMAC
//    does not verify, and the call rejects with TpmSessionError instead of returning wrong bytes.
//
// Run: see examples/README.md.
import { pathToFileURL } from "node:url";
import { SoftTpm, TPM_CC, Tpm, memory, policy, sealedDataTemplate, srkRsa2048Template, toHex, type TpmBackend } from "../src/index.js";

/** Runs the example; `log` receives each output line. */
export async function main(log: (line: string) => void = console.log): Promise<void> {
  const soft = new SoftTpm({ seed: "typed-session example" });
  const wire: Uint8Array[] = [];
  let flipNextUnseal = false;
  const backend: TpmBackend = {
    start: () => soft.start(),
    async execute(command, locality, signal) {
      wire.push(command);
      const rsp = (await soft.execute(command, locality, signal)).slice();
      wire.push(rsp);
      const cc = ((command[6]! << 24) | (command[7]! << 16) | (command[8]! << 8) | command[9]!) >>> 0;
      if (flipNextUnseal && cc === TPM_CC.Unseal) {
        flipNextUnseal = false;
        rsp[16]! ^= 1; // a byte of outData (header 10, parameterSize 4, size 2)
      }
      return rsp;
    },
  };
  await using tpm = await Tpm.open(memory({ backend }));
  const srk = (await tpm.createPrimary(srkRsa2048Template())).handle;
  const secret = new TextEncoder().encode("the launch codes");
  const approved = policy().commandCode(TPM_CC.Unseal).authValue().digest;
  const c = await tpm.create(srk, sealedDataTemplate({ authPolicy: approved }), { data: secret, userAuth: "pw" });
  const obj = (await tpm.load(srk, c.private, c.public)).handle;

  // 1. salted HMAC session, parameter encryption both ways
  await using s = await tpm.startAuthSession({ salt: srk, attributes: { decrypt: true, encrypt: true } });
  wire.length = 0;
  const out = await tpm.unseal(obj, { auth: { session: s, password: "pw" } });
  const onWire = wire.some((b) => Buffer.from(b).includes(Buffer.from(secret)));
  log(`salted HMAC session 0x${s.handle.toString(16)}: unsealed "${new TextDecoder().decode(out)}", secret on the wire: ${onWire ? "yes" : "no"}`);

  // 2. policy session
  await using ps = await tpm.startAuthSession({ type: "policy" });
  await tpm.policyCommandCode(ps, TPM_CC.Unseal);
  await tpm.policyAuthValue(ps);
  const digest = await tpm.policyGetDigest(ps);
  log(`policy digest ${toHex(digest).slice(0, 16)}…, as computed offline: ${toHex(digest) === toHex(approved) ? "yes" : "no"}`);
  log(`policy session unsealed: "${new TextDecoder().decode(await tpm.unseal(obj, { auth: { session: ps, password: "pw" } }))}"`);

  // 3. a changed response
  flipNextUnseal = true;
  const err = await tpm.unseal(obj, { auth: { session: s, password: "pw" } }).catch((e: unknown) => e);
  log(`a changed response byte: ${err instanceof Error ? err.name : "accepted!"}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
