/**
 * The timeline as a terminal table (issue 10, point 5: what `tpmkit boot ffa-ima` prints).
 */
import { describe, expect, it } from "vitest";
import { TpmArgumentError } from "../errors/index.js";
import { cellText, timelineTable } from "./table.js";
import type { TimelineEntry } from "./timeline.js";

const SMALL: TimelineEntry[] = [
  { time: 0, kind: "initcall-start", level: "device", name: "crb_acpi_driver_init" },
  { time: 0.25, kind: "probe-deferred", level: "device", name: "MSFT0101:00", detail: "-EPROBE_DEFER" },
  { time: 12.5, kind: "ima", level: "late", name: "init_ima", detail: "ima: No TPM chip found, activating TPM-bypass!" },
  { time: 130, kind: "log", level: undefined, name: "done" },
];

describe("timelineTable", () => {
  it("prints time, level, kind, name and detail in fixed-width columns", () => {
    expect(timelineTable(SMALL)).toBe(
      [
        "time (ms)  level   kind            name                  detail",
        "---------  ------  --------------  --------------------  ----------------------------------------------",
        "    0.000  device  initcall-start  crb_acpi_driver_init",
        "    0.250  device  probe-deferred  MSFT0101:00           -EPROBE_DEFER",
        "   12.500  late    ima             init_ima              ima: No TPM chip found, activating TPM-bypass!",
        "  130.000  -       log             done",
        "",
      ].join("\n"),
    );
  });

  it("every row has the same column starts, and no trailing spaces", () => {
    const lines = timelineTable(SMALL).trimEnd().split("\n");
    const levelAt = lines[0]!.indexOf("level");
    const nameAt = lines[0]!.indexOf("name");
    for (const l of lines.slice(2)) {
      expect(l[levelAt - 1]).toBe(" ");
      expect(l[levelAt]).not.toBe(" ");
      expect(l[nameAt]).not.toBe(" ");
      expect(l).toBe(l.trimEnd());
    }
  });

  it("shows the driver of a probe or bind entry in the detail", () => {
    const e = { time: 1, kind: "bind", level: "device", name: "arm-ffa-1", driver: "tpm_crb_ffa", detail: "version 1.0" } as TimelineEntry;
    expect(timelineTable([e])).toContain("arm-ffa-1  driver tpm_crb_ffa; version 1.0");
  });

  it("escapes control characters so a detail cannot break the layout or drive the terminal", () => {
    const out = timelineTable([{ time: 0, kind: "log", level: "late", name: "a\tb", detail: "line1\nline2\u001b[31mred\u0085" }]);
    expect(out).toContain("a\\tb");
    expect(out).toContain("line1\\nline2\\x1b[31mred\\x85");
    expect(out.split("\n")).toHaveLength(4); // header, rule, one row, final ""
    expect(cellText("ok é 😀")).toBe("ok é 😀");
  });

  it("options: decimals, relative times, truncation", () => {
    const t = timelineTable(SMALL.slice(1), { timeDecimals: 1, relative: true, maxNameWidth: 5, maxDetailWidth: 10 });
    expect(t).toContain("    0.0  device  probe-deferred  MSFT…  -EPROBE_D…");
    expect(t).toContain("  129.8  -       log             done");
  });

  it("an empty timeline is just the header", () => {
    expect(timelineTable([])).toBe("time (ms)  level  kind  name  detail\n---------  -----  ----  ----  ------\n");
  });

  it("refuses what is not a timeline, and bad options", () => {
    expect(() => timelineTable(undefined as never)).toThrow(TpmArgumentError);
    expect(() => timelineTable([{ name: "x" } as never])).toThrow("timelineTable: timeline[0] is not a TimelineEntry");
    expect(() => timelineTable(SMALL, { timeDecimals: -1 })).toThrow(TpmArgumentError);
    expect(() => timelineTable(SMALL, { timeDecimals: 10 })).toThrow(TpmArgumentError);
    expect(() => timelineTable(SMALL, { maxNameWidth: 1 })).toThrow(TpmArgumentError);
  });
});
