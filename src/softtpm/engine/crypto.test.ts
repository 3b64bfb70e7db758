import { describe, expect, it } from "vitest";
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { HASH_IMPLS } from "../tables.js";
import { KdfStream, aesCfb, fromBig, generateRsa, rsaFromPrime } from "./crypto.js";
import { kdfa } from "./auth.js";

const b64 = (v: bigint, n?: number) => Buffer.from(fromBig(v, n ?? Math.ceil(v.toString(16).length / 2))).toString("base64url");

describe("SoftTpm crypto primitives", () => {
  it("the KDF stream's first block is KDFa with L = one digest (Part 1 §11.4.10.2)", () => {
    const a = HASH_IMPLS[1]!;
    const key = new Uint8Array(32).fill(5);
    const s = new KdfStream(a, key, "RSA", Uint8Array.of(1), Uint8Array.of(2));
    expect(Buffer.from(s.next(32)).toString("hex")).toBe(Buffer.from(kdfa(a, key, "RSA", Uint8Array.of(1), Uint8Array.of(2), 256)).toString("hex"));
    const again = new KdfStream(a, key, "RSA", Uint8Array.of(1), Uint8Array.of(2));
    const long = again.next(100);
    expect(long.subarray(0, 32)).toEqual(new KdfStream(a, key, "RSA", Uint8Array.of(1), Uint8Array.of(2)).next(32));
  });

  it("a derived RSA key is a working key for node:crypto (sign, verify), and p recovers it", () => {
    const a = HASH_IMPLS[1]!;
    const s = new KdfStream(a, new Uint8Array(32), "RSA", new Uint8Array(0), new Uint8Array(0));
    const k = generateRsa(1024, 65537n, (n) => s.next(n));
    expect(k.n.toString(2).length).toBe(1024);
    expect(k.p * k.q).toBe(k.n);
    expect(rsaFromPrime(k.n, k.e, k.p)!.d).toBe(k.d);
    const jwk = { kty: "RSA", n: b64(k.n, 128), e: b64(k.e), d: b64(k.d, 128), p: b64(k.p, 64), q: b64(k.q, 64), dp: b64(k.d % (k.p - 1n)), dq: b64(k.d % (k.q - 1n)), qi: b64(modInvT(k.q, k.p)) };
    const priv = createPrivateKey({ key: jwk, format: "jwk" });
    const pub = createPublicKey(priv);
    const sig = sign("sha256", Buffer.from("hello"), priv);
    expect(verify("sha256", Buffer.from("hello"), pub, sig)).toBe(true);
  });

  it("the prime search draws the same bytes as the BigInt-only search did: the same seed gives the same key as before", () => {
    // sha256 of the modulus (hex) that generateRsa(2048) gave from this stream with the BigInt
    // Miller-Rabin of tpmkit 2026-12-03 (commit 47ed857), before the OpenSSL primality test:
    // primary keys must not change across versions (a key sealed under a primary must still load)
    const s = new KdfStream(HASH_IMPLS[1]!, new Uint8Array(32).fill(2), "RSA", Uint8Array.of(1), new Uint8Array(0));
    const k = generateRsa(2048, 65537n, (n) => s.next(n));
    expect(createHash("sha256").update(k.n.toString(16)).digest("hex")).toBe("4a9c7f9c8c27036ab61932c5222d8398247158e32b0e20780a637a77ce6d29d7");
  });

  it("AES-CFB round trip; the ciphertext has the plaintext's length", () => {
    const key = new Uint8Array(16).fill(1);
    const d = Uint8Array.from({ length: 37 }, (_, i) => i);
    const e = aesCfb(key, d, true);
    expect(e.length).toBe(37);
    expect(aesCfb(key, e, false)).toEqual(d);
  });
});

function modInvT(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1, s0, s1] = [r1, r0 - q * r1, s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}
