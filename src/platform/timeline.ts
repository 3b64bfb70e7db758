/**
 * The boot timeline a {@link Platform} records: one entry per initcall, probe, deferral, bind,
 * deferred-probe flush, chip registration and (for the Linux boot models) IMA decision, in the
 * order they happened. Plain data, so it can be printed as a table, rendered as an SVG or
 * compared in tests.
 *
 * @packageDocumentation
 */

/** The kernel's initcall levels, in the order they run (include/linux/init.h). */
export const INITCALL_LEVELS = ["early", "pure", "core", "postcore", "arch", "subsys", "fs", "rootfs", "device", "late", "late_sync"] as const;

/** One initcall level. */
export type InitcallLevel = (typeof INITCALL_LEVELS)[number];

/** What a timeline entry is about. */
export type TimelineKind =
  | "initcall-start"
  | "initcall-end"
  | "driver-register"
  | "device-add"
  | "device-remove"
  | "probe"
  | "probe-deferred"
  | "probe-failed"
  | "bind"
  | "unbind"
  | "deferred-enable"
  | "deferred-flush"
  | "chip-register"
  | "wait"
  | "ima"
  | "log";

/** One thing that happened during a boot. */
export interface TimelineEntry {
  /** Milliseconds on the platform's clock since `boot()` started. */
  readonly time: number;
  /** What happened. */
  readonly kind: TimelineKind;
  /** The initcall level that was running (undefined before the first and after the last). */
  readonly level: InitcallLevel | undefined;
  /** The initcall, driver, device or chip the entry is about (e.g. "crb_acpi_driver_init", "tpm_crb_ffa", "arm-ffa-1"). */
  readonly name: string;
  /** More: the driver a device bound to, the error of a failed or deferred probe, a log line. */
  readonly detail?: string;
  /** The driver of a probe, deferral, failed probe, bind or unbind entry (its `name` is the device). */
  readonly driver?: string;
}
