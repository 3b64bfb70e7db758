/**
 * A boot timeline as a picture: a standalone SVG with the kernel's initcall levels as lanes
 * (include/linux/init.h order), initcalls as bars, probes, deferrals, binds, the deferred-probe
 * flush and chip registrations as marked points, and the IMA decision highlighted (TPM-bypass in
 * red, a boot aggregate in green). Pure string building: same input, same bytes; no scripts,
 * fonts, images or links to anything outside the file.
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../errors/index.js";
import { INITCALL_LEVELS, type InitcallLevel, type TimelineEntry, type TimelineKind } from "./timeline.js";

/** Options of {@link timelineSvg}. */
export interface TimelineSvgOptions {
  /** A title drawn at the top (and the SVG's `<title>`). Default "Boot timeline". */
  title?: string;
  /**
   * The x axis. `"sequence"` (default): one column per entry, in timeline order, with the time
   * written on the axis wherever it changes (readable even when a fake clock stamps every entry
   * with the same time). `"time"`: x proportional to the entry's time.
   */
  scale?: "sequence" | "time";
  /** Draw every initcall level as a lane, even those with no entry. Default false (only levels present). */
  allLevels?: boolean;
  /** Add the numbered list of every entry under the chart. Default true. */
  legend?: boolean;
  /**
   * Overrides the IMA colour: true = bypass (red), false = aggregate (green). Default: an `ima`
   * entry whose name or detail says "bypass" (as the kernel's "activating TPM-bypass!" line
   * does), and not "bypass: false" / "bypass=false", is a bypass.
   */
  imaBypass?: boolean;
}

const LABEL_COL = 132;
const SLOT = 24;
const LANE_H = 128;
const TOP = 64;
const BAR_H = 12;
const AXIS_H = 44;
const ROW_H = 14;
const MAX_LABEL = 26;
const OTHER_LANE = "(no level)";

type Style = { short: string; color: string; shape: "bar" | "circle" | "ring" | "diamond" | "square" | "cross" | "line" | "star" };

/** How each kind is drawn: the short label, a colour and a marker shape (kinds added later fall back to a grey dot). */
const STYLE: Partial<Record<TimelineKind, Style>> = {
  "initcall-start": { short: "", color: "#4a6fa5", shape: "bar" },
  "initcall-end": { short: "end", color: "#4a6fa5", shape: "bar" },
  "driver-register": { short: "drv", color: "#777777", shape: "square" },
  "device-add": { short: "dev", color: "#777777", shape: "square" },
  "device-remove": { short: "dev gone", color: "#777777", shape: "cross" },
  probe: { short: "probe", color: "#1f77b4", shape: "ring" },
  "probe-deferred": { short: "defer", color: "#e67e00", shape: "diamond" },
  "probe-failed": { short: "fail", color: "#c0392b", shape: "cross" },
  bind: { short: "bind", color: "#2e8b57", shape: "circle" },
  unbind: { short: "unbind", color: "#999999", shape: "ring" },
  "deferred-enable": { short: "deferred on", color: "#8e44ad", shape: "line" },
  "deferred-flush": { short: "flush", color: "#8e44ad", shape: "line" },
  "chip-register": { short: "chip", color: "#008080", shape: "star" },
  wait: { short: "wait", color: "#555555", shape: "diamond" },
  ima: { short: "IMA", color: "#2e8b57", shape: "star" },
  log: { short: "log", color: "#999999", shape: "circle" },
};

function styleOf(kind: string): Style {
  return STYLE[kind as TimelineKind] ?? { short: kind, color: "#999999", shape: "circle" };
}

const BYPASS_RED = "#d62728";
const AGGREGATE_GREEN = "#2ca02c";

/**
 * Escapes text for XML character data and attribute values, and replaces characters XML 1.0
 * does not allow (controls other than tab/newline/CR, lone surrogates, U+FFFE/U+FFFF) with U+FFFD.
 *
 * @param text - any string.
 * @returns the text, safe inside an element or a quoted attribute.
 * @example
 * ```ts
 * xmlEscape('a<b & "c"'); // "a&lt;b &amp; &quot;c&quot;"
 * ```
 */
export function xmlEscape(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const n = text.charCodeAt(i + 1);
      if (n >= 0xdc00 && n <= 0xdfff) {
        out += text[i]! + text[i + 1]!;
        i++;
      } else out += "\ufffd";
      continue;
    }
    if ((c >= 0xdc00 && c <= 0xdfff) || c === 0xfffe || c === 0xffff || (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d)) {
      out += "\ufffd";
      continue;
    }
    switch (c) {
      case 0x26: out += "&amp;"; break;
      case 0x3c: out += "&lt;"; break;
      case 0x3e: out += "&gt;"; break;
      case 0x22: out += "&quot;"; break;
      case 0x27: out += "&#39;"; break;
      case 0x09: out += "&#9;"; break;
      case 0x0a: out += "&#10;"; break;
      case 0x0d: out += "&#13;"; break;
      default: out += text[i]!;
    }
  }
  return out;
}

/** A number as the SVG gets it: at most 2 decimals, no "-0", no exponent for the sizes we use. */
function n(v: number): string {
  if (!Number.isFinite(v)) return "0";
  const r = Math.round(v * 100) / 100;
  return Object.is(r, -0) ? "0" : String(r);
}

/** A time in ms for the axis and the legend. */
function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return "?";
  const abs = Math.abs(ms);
  const s = abs >= 1000 ? `${(ms / 1000).toFixed(abs >= 10000 ? 1 : 2)} s` : abs >= 10 || Number.isInteger(ms) ? `${Math.round(ms * 10) / 10} ms` : `${Math.round(ms * 1000) / 1000} ms`;
  return s.startsWith("-0 ") ? s.slice(1) : s;
}

function truncate(s: string, max: number): string {
  const chars = Array.from(s);
  return chars.length <= max ? s : `${chars.slice(0, max - 1).join("")}…`;
}

/** The name, with the driver of a probe/bind entry when the timeline records one (read structurally). */
function nameOf(e: TimelineEntry): string {
  const d = (e as { driver?: unknown }).driver;
  return typeof d === "string" && d !== "" ? `${e.name} (${d})` : e.name;
}

function isBypass(e: TimelineEntry, override: boolean | undefined): boolean {
  if (override !== undefined) return override;
  const text = `${e.name} ${e.detail ?? ""}`;
  return /bypass/i.test(text) && !/bypass\W{0,3}(false|no|0)\b/i.test(text);
}

function checkTimeline(timeline: unknown, title: string): readonly TimelineEntry[] {
  if (!Array.isArray(timeline)) throw new TpmArgumentError(`${title}: timeline must be an array of TimelineEntry, got ${timeline === null ? "null" : typeof timeline}`);
  timeline.forEach((e: unknown, i) => {
    const x = e as Partial<TimelineEntry> | null;
    if (x === null || typeof x !== "object" || typeof x.kind !== "string" || typeof x.name !== "string" || typeof x.time !== "number") {
      throw new TpmArgumentError(`${title}: timeline[${i}] is not a TimelineEntry (needs time: number, kind: string, name: string)`);
    }
  });
  return timeline as readonly TimelineEntry[];
}

/** The lane an entry goes in. */
function laneOf(e: TimelineEntry): string {
  return e.level !== undefined && (INITCALL_LEVELS as readonly string[]).includes(e.level) ? e.level : OTHER_LANE;
}

/** Pairs each initcall-start with the next initcall-end of the same name and level (index of the end, or -1). */
function pairInitcalls(t: readonly TimelineEntry[]): Map<number, number> {
  const pairs = new Map<number, number>();
  const used = new Set<number>();
  t.forEach((e, i) => {
    if (e.kind !== "initcall-start") return;
    let end = -1;
    for (let j = i + 1; j < t.length; j++) {
      const f = t[j]!;
      if (!used.has(j) && f.kind === "initcall-end" && f.name === e.name && f.level === e.level) {
        end = j;
        break;
      }
    }
    if (end >= 0) used.add(end);
    pairs.set(i, end);
  });
  return pairs;
}

function marker(shape: string, x: number, y: number, color: string): string {
  switch (shape) {
    case "circle":
      return `<circle cx="${n(x)}" cy="${n(y)}" r="5" fill="${color}"/>`;
    case "ring":
      return `<circle cx="${n(x)}" cy="${n(y)}" r="5" fill="#ffffff" stroke="${color}" stroke-width="2"/>`;
    case "diamond":
      return `<path d="M${n(x)} ${n(y - 6)}L${n(x + 6)} ${n(y)}L${n(x)} ${n(y + 6)}L${n(x - 6)} ${n(y)}Z" fill="${color}"/>`;
    case "square":
      return `<rect x="${n(x - 4)}" y="${n(y - 4)}" width="8" height="8" fill="${color}"/>`;
    case "cross":
      return `<path d="M${n(x - 5)} ${n(y - 5)}L${n(x + 5)} ${n(y + 5)}M${n(x + 5)} ${n(y - 5)}L${n(x - 5)} ${n(y + 5)}" stroke="${color}" stroke-width="3"/>`;
    case "star": {
      const pts: string[] = [];
      for (let k = 0; k < 10; k++) {
        const r = k % 2 === 0 ? 8 : 3.5;
        const a = (Math.PI / 5) * k - Math.PI / 2;
        pts.push(`${n(x + r * Math.cos(a))},${n(y + r * Math.sin(a))}`);
      }
      return `<polygon points="${pts.join(" ")}" fill="${color}" stroke="#333333" stroke-width="0.5"/>`;
    }
    default:
      return `<circle cx="${n(x)}" cy="${n(y)}" r="4" fill="${color}"/>`;
  }
}

/** "Nice" axis ticks (1, 2, 5 × 10^k) over [lo, hi]. */
function niceTicks(lo: number, hi: number, want: number): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / Math.max(1, want);
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  return out;
}

/**
 * Renders a platform boot timeline as a standalone SVG document: the initcall levels present as
 * horizontal lanes in the kernel's order (early … late_sync, include/linux/init.h), plus a lane
 * for entries outside any level; each initcall as a bar from its start to its end (to the right
 * edge, dashed, if it never ended); every other entry as a marker with a short label (probe,
 * defer, fail, bind, chip, flush ...); the deferred-probe flush and enable as lines across all
 * lanes; the IMA decision as a band across all lanes, red for TPM-bypass and green for a boot
 * aggregate; a time axis; and (unless `legend: false`) a numbered list of every entry with its
 * time, level, kind, name and detail. Output is deterministic and all text is escaped.
 *
 * @param timeline - the entries, in the order they happened (a Platform's `timeline`).
 * @param options - {@link TimelineSvgOptions}.
 * @returns the SVG document as a string (UTF-8 text, starting with `<svg`).
 * @throws TpmArgumentError when `timeline` is not an array of entries.
 * @example
 * ```ts
 * import { writeFileSync } from "node:fs";
 * const { timeline } = await linuxFfaBoot({ fix: "none" });
 * writeFileSync("boot.svg", timelineSvg(timeline, { title: "CRB over FF-A, no fix" }));
 * ```
 */
export function timelineSvg(timeline: readonly TimelineEntry[], options: TimelineSvgOptions = {}): string {
  const t = checkTimeline(timeline, "timelineSvg");
  if (options === null || typeof options !== "object") throw new TpmArgumentError("timelineSvg: options must be an object");
  const title = options.title ?? "Boot timeline";
  const scale = options.scale ?? "sequence";
  if (scale !== "sequence" && scale !== "time") throw new TpmArgumentError(`timelineSvg: scale must be "sequence" or "time", got ${String(scale)}`);
  const showLegend = options.legend ?? true;

  // Lanes: levels present (or all), in INITCALL_LEVELS order, then the no-level lane if needed.
  const present = new Set(t.map(laneOf));
  const lanes: string[] = INITCALL_LEVELS.filter((l: InitcallLevel) => options.allLevels === true || present.has(l));
  if (present.has(OTHER_LANE)) lanes.push(OTHER_LANE);
  const laneY = new Map(lanes.map((l, i) => [l, TOP + i * LANE_H]));

  // X positions.
  const count = Math.max(1, t.length);
  const plotW = Math.max(SLOT * count, 480);
  const times = t.map((e) => (Number.isFinite(e.time) ? e.time : 0));
  const t0 = times.length ? Math.min(...times) : 0;
  const t1 = times.length ? Math.max(...times) : 0;
  const xOf = (i: number): number => {
    if (scale === "sequence") return LABEL_COL + (i + 0.5) * (plotW / count);
    const span = t1 - t0;
    return LABEL_COL + 12 + (span > 0 ? ((times[i]! - t0) / span) * (plotW - 24) : (plotW - 24) / 2);
  };
  const width = LABEL_COL + plotW + 120; // room for the last rotated labels
  const chartBottom = TOP + lanes.length * LANE_H;
  const legendTop = chartBottom + AXIS_H + 20;
  const height = showLegend ? legendTop + (t.length + 1) * ROW_H + 16 : chartBottom + AXIS_H + 8;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${n(width)}" height="${n(height)}" viewBox="0 0 ${n(width)} ${n(height)}" font-family="sans-serif" font-size="10">`);
  out.push(`<title>${xmlEscape(title)}</title>`);
  out.push(`<rect x="0" y="0" width="${n(width)}" height="${n(height)}" fill="#ffffff"/>`);
  out.push(`<text x="12" y="22" font-size="15" font-weight="bold">${xmlEscape(title)}</text>`);

  // Lanes.
  lanes.forEach((l, i) => {
    const y = laneY.get(l)!;
    out.push(`<g class="lane" data-level="${xmlEscape(l)}">`);
    out.push(`<rect x="${LABEL_COL}" y="${y}" width="${n(plotW)}" height="${LANE_H}" fill="${i % 2 === 0 ? "#f7f7f7" : "#ffffff"}" stroke="#dddddd"/>`);
    out.push(`<text x="${LABEL_COL - 8}" y="${n(y + LANE_H - BAR_H)}" text-anchor="end" font-weight="bold">${xmlEscape(l)}</text>`);
    out.push(`</g>`);
  });
  if (t.length === 0) out.push(`<text x="${LABEL_COL + 12}" y="${TOP + 20}" fill="#777777">empty timeline</text>`);

  // Full-height features first (under the markers): IMA bands, flush/enable lines.
  t.forEach((e, i) => {
    const x = xOf(i);
    if (e.kind === "ima") {
      const bypass = isBypass(e, options.imaBypass);
      const color = bypass ? BYPASS_RED : AGGREGATE_GREEN;
      const label = bypass ? "IMA: TPM-bypass" : "IMA: boot aggregate";
      out.push(`<g class="ima ${bypass ? "bypass" : "aggregate"}">`);
      out.push(`<rect x="${n(x - 7)}" y="${TOP}" width="14" height="${n(chartBottom - TOP)}" fill="${color}" fill-opacity="0.18" stroke="${color}"/>`);
      const bx = Math.min(Math.max(x, 64), width - 64); // keep the badge inside the picture
      out.push(`<rect x="${n(bx - 62)}" y="${TOP - 26}" width="124" height="18" rx="4" fill="${color}"/>`);
      out.push(`<text x="${n(bx)}" y="${TOP - 13}" text-anchor="middle" fill="#ffffff" font-weight="bold">${label}</text>`);
      out.push(`</g>`);
    } else if (styleOf(e.kind).shape === "line") {
      out.push(`<line class="${e.kind}" x1="${n(x)}" y1="${TOP}" x2="${n(x)}" y2="${n(chartBottom)}" stroke="${styleOf(e.kind).color}" stroke-width="1.5" stroke-dasharray="${e.kind === "deferred-flush" ? "6 3" : "2 3"}"/>`);
    }
  });

  // Initcall bars.
  for (const [start, end] of pairInitcalls(t)) {
    const e = t[start]!;
    const y = laneY.get(laneOf(e))! + LANE_H - BAR_H - 4;
    const x1 = xOf(start) - 4;
    const x2 = end >= 0 ? xOf(end) + 4 : LABEL_COL + plotW - 2;
    const dur = end >= 0 ? ` (${formatMs(times[end]! - times[start]!)})` : " (did not return)";
    out.push(`<rect class="initcall" x="${n(x1)}" y="${n(y)}" width="${n(Math.max(2, x2 - x1))}" height="${BAR_H}" rx="2" fill="${"#4a6fa5"}" fill-opacity="0.85"${end >= 0 ? "" : ` stroke="#333333" stroke-dasharray="3 2"`}><title>${xmlEscape(`${e.name}${dur}`)}</title></rect>`);
  }

  // Markers and their labels (rotated, so neighbouring columns never collide).
  t.forEach((e, i) => {
    if (e.kind === "initcall-end") return;
    const style = styleOf(e.kind);
    const lane = laneY.get(laneOf(e))!;
    const x = xOf(i);
    const y = e.kind === "initcall-start" ? lane + LANE_H - BAR_H - 4 : lane + LANE_H - BAR_H - 16;
    const color = e.kind === "ima" ? (isBypass(e, options.imaBypass) ? BYPASS_RED : AGGREGATE_GREEN) : style.color;
    const full = `${i + 1} ${style.short ? `${style.short} ` : ""}${nameOf(e)}${e.detail ? `: ${e.detail}` : ""}`;
    out.push(`<g class="entry ${e.kind}">`);
    out.push(`<title>${xmlEscape(full)}</title>`);
    if (style.shape !== "bar" && style.shape !== "line") out.push(marker(style.shape, x, y, color));
    if (style.shape === "line") out.push(marker("diamond", x, y, color));
    const label = truncate(`${style.short ? `${style.short} ` : ""}${e.name}`, MAX_LABEL);
    const ly = y - 9;
    out.push(`<text x="${n(x)}" y="${n(ly)}" transform="rotate(-45 ${n(x)} ${n(ly)})" fill="${e.kind === "initcall-start" ? "#222222" : color}">${xmlEscape(label)}</text>`);
    out.push(`</g>`);
  });

  // Time axis.
  const axisY = chartBottom + 6;
  out.push(`<g class="axis">`);
  out.push(`<line x1="${LABEL_COL}" y1="${axisY}" x2="${n(LABEL_COL + plotW)}" y2="${axisY}" stroke="#333333"/>`);
  out.push(`<text x="${LABEL_COL - 8}" y="${axisY + 14}" text-anchor="end">time</text>`);
  if (scale === "sequence") {
    let lastX = -Infinity;
    let lastT = NaN;
    t.forEach((_, i) => {
      if (times[i] === lastT) return;
      lastT = times[i]!;
      const x = xOf(i);
      out.push(`<line x1="${n(x)}" y1="${axisY}" x2="${n(x)}" y2="${axisY + 5}" stroke="#333333"/>`);
      if (x - lastX >= 56) {
        out.push(`<text x="${n(x)}" y="${axisY + 17}" text-anchor="middle">${xmlEscape(formatMs(times[i]! - t0))}</text>`);
        lastX = x;
      }
    });
  } else {
    for (const v of niceTicks(0, t1 - t0, Math.max(2, Math.floor(plotW / 90)))) {
      const x = t1 - t0 > 0 ? LABEL_COL + 12 + (v / (t1 - t0)) * (plotW - 24) : LABEL_COL + plotW / 2;
      out.push(`<line x1="${n(x)}" y1="${axisY}" x2="${n(x)}" y2="${axisY + 5}" stroke="#333333"/>`);
      out.push(`<text x="${n(x)}" y="${axisY + 17}" text-anchor="middle">${xmlEscape(formatMs(v))}</text>`);
    }
  }
  out.push(`</g>`);

  // Legend: every entry, numbered as in the tooltips.
  if (showLegend) {
    out.push(`<g class="legend" font-family="monospace" font-size="10">`);
    const header = `${"#".padEnd(4)} ${"time".padEnd(11)} ${"level".padEnd(11)} ${"kind".padEnd(16)} name — detail`;
    out.push(`<text x="12" y="${legendTop}" font-weight="bold" xml:space="preserve">${xmlEscape(header)}</text>`);
    t.forEach((e, i) => {
      const y = legendTop + (i + 1) * ROW_H;
      const color = e.kind === "ima" ? (isBypass(e, options.imaBypass) ? BYPASS_RED : AGGREGATE_GREEN) : e.kind === "probe-failed" || e.kind === "probe-deferred" ? styleOf(e.kind).color : "#222222";
      const row = `${String(i + 1).padEnd(4)} ${formatMs(times[i]! - t0).padEnd(11)} ${(e.level ?? "-").padEnd(11)} ${e.kind.padEnd(16)} ${nameOf(e)}${e.detail ? ` — ${e.detail}` : ""}`;
      out.push(`<text x="12" y="${y}" fill="${color}" xml:space="preserve">${xmlEscape(row)}</text>`);
    });
    out.push(`</g>`);
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
