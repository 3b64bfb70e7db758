import { describe, expect, it, vi } from "vitest";
import { ERROR_BRAND, TpmArgumentError, TpmkitError, TpmTimeoutError, TpmTransportError } from "./index.js";

/** A second copy of the classes, as a CJS build loaded beside the ESM build would give. */
async function secondCopy(): Promise<typeof import("./index.js")> {
  vi.resetModules();
  return await import("./index.js");
}

describe("errors: instanceof across copies", () => {
  it("an error from another copy of the module is instanceof this copy's classes, along its own chain only", async () => {
    const other = await secondCopy();
    expect(other.TpmTimeoutError).not.toBe(TpmTimeoutError);
    const e = new other.TpmTimeoutError("probe", 750);
    expect(e instanceof TpmkitError).toBe(true);
    expect(e instanceof TpmTimeoutError).toBe(true);
    expect(e instanceof TpmTransportError).toBe(false);
    expect(e instanceof Error).toBe(true);
    expect(new TpmArgumentError("x") instanceof other.TpmkitError).toBe(true);
    expect(new TpmArgumentError("x") instanceof other.TpmArgumentError).toBe(true);
    expect(new TpmArgumentError("x") instanceof other.TpmTimeoutError).toBe(false);
  });

  it("plain objects and other errors are not tpmkit errors, even with a look-alike code", () => {
    expect({ code: "TPM_TIMEOUT" } instanceof TpmkitError).toBe(false);
    expect(new Error("x") instanceof TpmkitError).toBe(false);
    expect((null as unknown as object) instanceof TpmkitError).toBe(false);
    expect(Object.assign(new Error("x"), { [ERROR_BRAND]: "TpmkitError" }) instanceof TpmkitError).toBe(false);
  });

  it("user subclasses keep working with instanceof", () => {
    class MyError extends TpmTransportError {}
    const e = new MyError("boom");
    expect(e instanceof MyError).toBe(true);
    expect(e instanceof TpmTransportError).toBe(true);
    expect(e instanceof TpmkitError).toBe(true);
    expect(new TpmTransportError("x") instanceof MyError).toBe(false);
    expect(e.name).toBe("MyError");
  });

  it("the brand is a non-enumerable Symbol.for key holding the class chain", () => {
    const e = new TpmArgumentError("bad");
    expect(ERROR_BRAND).toBe(Symbol.for("tpmkit.error"));
    expect((e as unknown as Record<symbol, unknown>)[ERROR_BRAND]).toEqual(["TpmArgumentError", "TpmkitError"]);
    expect(Object.getOwnPropertyDescriptor(e, ERROR_BRAND)?.enumerable).toBe(false);
    expect(JSON.parse(JSON.stringify(e))).toEqual({ code: "TPM_ARGUMENT", shortMessage: "bad", name: "TpmArgumentError" });
  });
});

describe("errors: names survive a minifier", () => {
  it("name and the cross-copy instanceof use the declared errorName, not the (renamable) constructor name", async () => {
    const other = await secondCopy();
    const original = Object.getOwnPropertyDescriptor(other.TpmTimeoutError, "name")!;
    Object.defineProperty(other.TpmTimeoutError, "name", { value: "t" }); // what a minifier does to the class
    try {
      const e = new other.TpmTimeoutError("probe", 750);
      expect(e.name).toBe("TpmTimeoutError");
      expect(e instanceof TpmTimeoutError).toBe(true);
      expect(e instanceof TpmkitError).toBe(true);
      expect(e instanceof TpmTransportError).toBe(false);
    } finally {
      Object.defineProperty(other.TpmTimeoutError, "name", original);
    }
  });

  it("every tpmkit error class declares its own errorName equal to its source name", async () => {
    const root = await import("../index.js");
    const base = root.TpmkitError;
    const classes = Object.entries(root).filter(([, v]) => typeof v === "function" && (v === base || (v as { prototype?: unknown }).prototype instanceof base));
    expect(classes.length).toBeGreaterThanOrEqual(15);
    for (const [name, cls] of classes) {
      expect(Object.prototype.hasOwnProperty.call(cls, "errorName"), name).toBe(true);
      expect((cls as unknown as { errorName: string }).errorName).toBe(name);
    }
  });
});
