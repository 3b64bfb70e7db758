/**
 * The timeline picture (issue 10, point 5): a well-formed, deterministic, self-contained SVG with
 * one lane per initcall level present (in the kernel's order), every entry's name, escaped text,
 * and the IMA decision coloured.
 */
import { describe, expect, it } from "vitest";
import { TpmArgumentError } from "../errors/index.js";
import { timelineSvg, xmlEscape } from "./svg.js";
import { INITCALL_LEVELS, type TimelineEntry } from "./timeline.js";

/** The CRB-over-FF-A race with no fix: crb_acpi links before ffa_init, IMA runs before the flush. */
const RACE: TimelineEntry[] = [
  { time: 0, kind: "initcall-start", level: "device", name: "crb_acpi_driver_init" },
  { time: 0, kind: "driver-register", level: "device", name: "crb_acpi" },
  { time: 0.1, kind: "probe", level: "device", name: "MSFT0101:00", detail: "crb_acpi" },
  { time: 0.2, kind: "probe-deferred", level: "device", name: "MSFT0101:00", detail: "tpm_crb_ffa not bound (-EPROBE_DEFER)" },
  { time: 0.2, kind: "initcall-end", level: "device", name: "crb_acpi_driver_init" },
  { time: 0.3, kind: "initcall-start", level: "device", name: "ffa_init" },
  { time: 0.4, kind: "device-add", level: "device", name: "arm-ffa-1" },
  { time: 0.5, kind: "initcall-end", level: "device", name: "ffa_init" },
  { time: 0.6, kind: "initcall-start", level: "device", name: "tpm_crb_ffa_init" },
  { time: 0.7, kind: "driver-register", level: "device", name: "tpm_crb_ffa" },
  { time: 0.8, kind: "probe", level: "device", name: "arm-ffa-1", detail: "tpm_crb_ffa" },
  { time: 0.9, kind: "bind", level: "device", name: "arm-ffa-1", detail: "tpm_crb_ffa" },
  { time: 1.0, kind: "initcall-end", level: "device", name: "tpm_crb_ffa_init" },
  { time: 1.1, kind: "initcall-start", level: "late", name: "init_ima" },
  { time: 1.2, kind: "ima", level: "late", name: "init_ima", detail: "ima: No TPM chip found, activating TPM-bypass!" },
  { time: 1.3, kind: "initcall-end", level: "late", name: "init_ima" },
  { time: 1.4, kind: "initcall-start", level: "late", name: "deferred_probe_initcall" },
  { time: 1.4, kind: "deferred-enable", level: "late", name: "deferred_probe_initcall" },
  { time: 1.5, kind: "deferred-flush", level: "late", name: "deferred_probe_initcall" },
  { time: 1.6, kind: "probe", level: "late", name: "MSFT0101:00", detail: "crb_acpi" },
  { time: 1.7, kind: "bind", level: "late", name: "MSFT0101:00", detail: "crb_acpi" },
  { time: 1.8, kind: "chip-register", level: "late", name: "tpm0" },
  { time: 1.9, kind: "initcall-end", level: "late", name: "deferred_probe_initcall" },
  { time: 2.0, kind: "log", level: undefined, name: "Run /init as init process" },
];

const FIXED: TimelineEntry[] = RACE.map((e) => (e.kind === "ima" ? { ...e, detail: "boot_aggregate sha256:3fa1…" } : e));

/**
 * A small XML well-formedness check: one root element, tags nest and match, attributes are
 * quoted and unique, `&` only starts a known or numeric entity, no `<` in text or attributes, no
 * characters XML 1.0 forbids. Returns the element names in document order.
 */
function parseXml(xml: string): { elements: { name: string; attrs: Record<string, string> }[]; texts: string[] } {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(xml)) throw new Error("forbidden character");
  const elements: { name: string; attrs: Record<string, string> }[] = [];
  const texts: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const checkEntities = (s: string, where: string): string => {
    const bad = s.replace(/&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g, "");
    if (bad.includes("&")) throw new Error(`bare & in ${where}: ${s}`);
    if (bad.includes("<")) throw new Error(`< in ${where}: ${s}`);
    return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&");
  };
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    if (text.trim() !== "") {
      if (stack.length === 0) throw new Error(`text outside the root: ${text}`);
      texts.push(checkEntities(text, "text"));
    }
    if (lt < 0) break;
    const gt = xml.indexOf(">", lt);
    if (gt < 0) throw new Error("unterminated tag");
    const tag = xml.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith("?") || tag.startsWith("!")) throw new Error(`unexpected ${tag}`);
    if (tag.startsWith("/")) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) throw new Error(`mismatched </${name}>`);
      continue;
    }
    const selfClosing = tag.endsWith("/");
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const m = /^([A-Za-z_][\w.:-]*)/.exec(body);
    if (!m) throw new Error(`bad tag <${tag}>`);
    const name = m[1]!;
    const attrs: Record<string, string> = {};
    let rest = body.slice(name.length);
    const attrRe = /^\s+([A-Za-z_][\w.:-]*)="([^"]*)"/;
    for (;;) {
      const a = attrRe.exec(rest);
      if (!a) break;
      if (a[1]! in attrs) throw new Error(`duplicate attribute ${a[1]}`);
      attrs[a[1]!] = checkEntities(a[2]!, `attribute ${a[1]}`);
      rest = rest.slice(a[0].length);
    }
    if (rest.trim() !== "") throw new Error(`junk in <${name}>: ${rest}`);
    if (stack.length === 0) roots++;
    if (roots > 1) throw new Error("more than one root");
    elements.push({ name, attrs });
    if (!selfClosing) stack.push(name);
  }
  if (stack.length) throw new Error(`unclosed ${stack.join(",")}`);
  return { elements, texts };
}

describe("timelineSvg", () => {
  it("is a well-formed standalone SVG document", () => {
    const svg = timelineSvg(RACE);
    const { elements } = parseXml(svg);
    expect(elements[0]!.name).toBe("svg");
    expect(elements[0]!.attrs.xmlns).toBe("http://www.w3.org/2000/svg");
    expect(svg.endsWith("</svg>\n")).toBe(true);
  });

  it("has one lane per level present, in INITCALL_LEVELS order, plus one for entries outside any level", () => {
    const { elements } = parseXml(timelineSvg(RACE));
    const lanes = elements.filter((e) => e.attrs.class === "lane").map((e) => e.attrs["data-level"]);
    expect(lanes).toEqual(["device", "late", "(no level)"]);
    const all = parseXml(timelineSvg(RACE.filter((e) => e.level !== undefined), { allLevels: true })).elements;
    expect(all.filter((e) => e.attrs.class === "lane").map((e) => e.attrs["data-level"])).toEqual([...INITCALL_LEVELS]);
  });

  it("names every entry, and gives each initcall a bar", () => {
    const svg = timelineSvg(RACE);
    const { texts, elements } = parseXml(svg);
    const all = texts.join("\n");
    for (const e of RACE) {
      expect(all, e.name).toContain(e.name);
      if (e.detail) expect(all, e.detail).toContain(e.detail);
    }
    expect(elements.filter((e) => e.attrs.class === "initcall")).toHaveLength(RACE.filter((e) => e.kind === "initcall-start").length);
    for (const kind of ["probe", "probe-deferred", "bind", "deferred-flush", "chip-register", "device-add"]) {
      expect(elements.some((e) => e.attrs.class === `entry ${kind}`), kind).toBe(true);
    }
  });

  it("colours the IMA decision: bypass red, aggregate green, or as told", () => {
    const bypass = parseXml(timelineSvg(RACE)).elements;
    expect(bypass.some((e) => e.attrs.class === "ima bypass")).toBe(true);
    expect(timelineSvg(RACE)).toContain("IMA: TPM-bypass");
    expect(timelineSvg(RACE)).toContain('fill="#d62728"');
    const fixed = timelineSvg(FIXED);
    expect(fixed).toContain('class="ima aggregate"');
    expect(fixed).toContain("IMA: boot aggregate");
    expect(fixed).not.toContain("#d62728");
    expect(timelineSvg(FIXED, { imaBypass: true })).toContain('class="ima bypass"');
    expect(timelineSvg(RACE, { imaBypass: false })).toContain('class="ima aggregate"');
    const said = (detail: string) => timelineSvg([{ time: 0, kind: "ima", level: "late", name: "init_ima", detail }]);
    expect(said("bypass")).toContain('class="ima bypass"');
    expect(said("bypass: false, boot_aggregate sha256")).toContain('class="ima aggregate"');
    expect(said("bypass=false")).toContain('class="ima aggregate"');
  });

  it("escapes <, &, >, quotes and characters XML forbids", () => {
    const evil: TimelineEntry[] = [
      { time: 0, kind: "initcall-start", level: "device", name: '<script>alert("x")</script>&amp' },
      { time: 1, kind: "probe-failed", level: "device", name: "dev'1", detail: "a > b & c < d\u0000\u001b[31m\ud800" },
      { time: 2, kind: "initcall-end", level: "device", name: '<script>alert("x")</script>&amp' },
    ];
    const svg = timelineSvg(evil, { title: "T & <b>" });
    const { texts } = parseXml(svg);
    expect(svg).not.toContain("<script");
    expect(svg).not.toContain("<b>");
    expect(svg).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp");
    expect(texts.join("\n")).toContain('<script>alert("x")</script>&amp');
    expect(texts.join("\n")).toContain("a > b & c < d\ufffd\ufffd[31m\ufffd");
    expect(xmlEscape("a<b & \"c\" 'd' >")).toBe("a&lt;b &amp; &quot;c&quot; &#39;d&#39; &gt;");
    expect(xmlEscape("😀")).toBe("😀");
  });

  it("is deterministic and self-contained", () => {
    const a = timelineSvg(RACE, { title: "race" });
    const b = timelineSvg(structuredClone(RACE), { title: "race" });
    expect(a).toBe(b);
    for (const s of [a, timelineSvg(RACE, { scale: "time" })]) {
      expect(s).not.toMatch(/href|<script|<image|<foreignObject|url\(|@import|<style/i);
      expect(s.match(/https?:\/\//g)).toEqual(["http://"]); // only the xmlns
    }
  });

  it("time scale: well-formed, with axis ticks", () => {
    const svg = timelineSvg(RACE, { scale: "time" });
    parseXml(svg);
    expect(svg).toContain("1 ms");
    expect(svg).toContain("2 ms");
  });

  it("same-time entries (a fake clock) still get their own columns in sequence scale", () => {
    const flat = RACE.map((e) => ({ ...e, time: 0 }));
    const svg = timelineSvg(flat);
    const { elements } = parseXml(svg);
    const xs = elements.filter((e) => e.name === "text" && e.attrs.transform?.startsWith("rotate")).map((e) => e.attrs.x);
    expect(new Set(xs).size).toBe(xs.length);
  });

  it("an initcall that never returned is drawn to the right edge, dashed", () => {
    const svg = timelineSvg([{ time: 0, kind: "initcall-start", level: "late", name: "init_ima" }]);
    parseXml(svg);
    expect(svg).toContain("init_ima (did not return)");
    expect(svg).toContain('stroke-dasharray="3 2"');
  });

  it("an empty timeline is still a valid picture; legend can be left out", () => {
    const svg = timelineSvg([]);
    parseXml(svg);
    expect(svg).toContain("empty timeline");
    const noLegend = timelineSvg(RACE, { legend: false });
    parseXml(noLegend);
    expect(noLegend).not.toContain('class="legend"');
  });

  it("kinds it does not know are drawn as grey dots, not refused", () => {
    const svg = timelineSvg([{ time: 0, kind: "something-new" as never, level: "device", name: "x" }]);
    parseXml(svg);
    expect(svg).toContain("something-new x");
  });

  it("refuses what is not a timeline", () => {
    expect(() => timelineSvg(null as never)).toThrow(TpmArgumentError);
    expect(() => timelineSvg([{ time: "0" } as never])).toThrow("timelineSvg: timeline[0] is not a TimelineEntry");
    expect(() => timelineSvg(RACE, { scale: "log" as never })).toThrow(TpmArgumentError);
  });
});
