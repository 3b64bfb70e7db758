/**
 * A boot timeline as fixed-width text for a terminal: one row per entry with its time, initcall
 * level, kind, name and detail. What `tpmkit boot` prints.
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../errors/index.js";
import type { TimelineEntry } from "./timeline.js";

/** Options of {@link timelineTable}. */
export interface TimelineTableOptions {
  /** Decimals of the time column (ms). Default 3. */
  timeDecimals?: number;
  /** The name column is cut to this many characters (with "…"). Default 32. */
  maxNameWidth?: number;
  /** The detail column is cut to this many characters (with "…"); default unlimited. */
  maxDetailWidth?: number;
  /** Show times relative to the first entry instead of as recorded. Default false (the Platform's times are already since boot start). */
  relative?: boolean;
}

/**
 * Makes a string safe for one table cell on a terminal: control characters (newlines, tabs,
 * escape sequences, C1 controls, DEL) become visible escapes such as `\n` and `\x1b`, so a
 * detail string cannot break the layout or drive the terminal.
 *
 * @param text - any string.
 * @returns the text with no control characters left.
 * @example
 * ```ts
 * cellText("a\nb\u001b[31m"); // "a\\nb\\x1b[31m"
 * ```
 */
export function cellText(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
}

/** The driver of a probe/bind entry, when the timeline records one (read structurally). */
function driverOf(e: TimelineEntry): string | undefined {
  const d = (e as { driver?: unknown }).driver;
  return typeof d === "string" && d !== "" ? d : undefined;
}

/** The detail cell: "driver X" for probe and bind entries, then the detail. */
function detailOf(e: TimelineEntry): string {
  const driver = driverOf(e);
  return [driver !== undefined ? `driver ${driver}` : "", e.detail ?? ""].filter((p) => p !== "").join("; ");
}

function cut(s: string, max: number | undefined): string {
  if (max === undefined) return s;
  const chars = Array.from(s);
  return chars.length <= max ? s : `${chars.slice(0, Math.max(0, max - 1)).join("")}…`;
}

function width(s: string): number {
  return Array.from(s).length;
}

function pad(s: string, w: number): string {
  return s + " ".repeat(Math.max(0, w - width(s)));
}

function positiveInt(v: unknown, name: string, fallback: number | undefined, min: number): number | undefined {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) throw new TpmArgumentError(`timelineTable: ${name} must be an integer ≥ ${min}, got ${String(v)}`);
  return v;
}

/**
 * Formats a boot timeline as a fixed-width text table with the columns `time (ms)`, `level`,
 * `kind`, `name` and `detail`, a header and a rule under it, one row per entry in timeline
 * order (a probe or bind entry's driver leads its detail, as "driver tpm_crb_ffa; ..."). Times are right-aligned with a fixed number of decimals; a missing level shows as
 * `-`; control characters are shown escaped ({@link cellText}); rows end with no trailing
 * spaces. Same input, same text.
 *
 * @param timeline - the entries (a Platform's `timeline`).
 * @param options - {@link TimelineTableOptions}.
 * @returns the table, lines joined with "\n" and ending with "\n".
 * @throws TpmArgumentError when `timeline` is not an array of entries or an option is out of range.
 * @example
 * ```ts
 * const { timeline } = await linuxFfaBoot({ fix: "none" });
 * process.stdout.write(timelineTable(timeline));
 * ```
 */
export function timelineTable(timeline: readonly TimelineEntry[], options: TimelineTableOptions = {}): string {
  if (!Array.isArray(timeline)) throw new TpmArgumentError(`timelineTable: timeline must be an array of TimelineEntry, got ${timeline === null ? "null" : typeof timeline}`);
  if (options === null || typeof options !== "object") throw new TpmArgumentError("timelineTable: options must be an object");
  const decimals = positiveInt(options.timeDecimals, "timeDecimals", 3, 0)!;
  if (decimals > 9) throw new TpmArgumentError(`timelineTable: timeDecimals must be an integer ≤ 9, got ${decimals}`);
  const maxName = positiveInt(options.maxNameWidth, "maxNameWidth", 32, 2);
  const maxDetail = positiveInt(options.maxDetailWidth, "maxDetailWidth", undefined, 2);
  timeline.forEach((e: unknown, i) => {
    const x = e as Partial<TimelineEntry> | null;
    if (x === null || typeof x !== "object" || typeof x.kind !== "string" || typeof x.name !== "string" || typeof x.time !== "number") {
      throw new TpmArgumentError(`timelineTable: timeline[${i}] is not a TimelineEntry (needs time: number, kind: string, name: string)`);
    }
  });
  const base = options.relative === true && timeline.length > 0 && Number.isFinite(timeline[0]!.time) ? timeline[0]!.time : 0;
  const header = ["time (ms)", "level", "kind", "name", "detail"];
  const rows = timeline.map((e) => [
    Number.isFinite(e.time) ? (e.time - base).toFixed(decimals) : String(e.time),
    cellText(e.level ?? "-"),
    cellText(e.kind),
    cut(cellText(e.name), maxName),
    cut(cellText(detailOf(e)), maxDetail),
  ]);
  const widths = header.map((h, c) => Math.max(width(h), ...rows.map((r) => width(r[c]!))));
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => (c === 0 ? " ".repeat(Math.max(0, widths[0]! - width(cell))) + cell : c === cells.length - 1 ? cell : pad(cell, widths[c]!)))
      .join("  ")
      .trimEnd();
  const out = [line(header), widths.map((w, c) => "-".repeat(c === widths.length - 1 ? Math.max(w, 6) : w)).join("  ")];
  for (const r of rows) out.push(line(r));
  return out.join("\n") + "\n";
}
