/**
 * The file access the Linux device transport goes through, injectable so the transport's
 * behaviour is tested without a TPM (see {@link FakeTpmDevice}) and so other runtimes can plug
 * in their own.
 *
 * @packageDocumentation
 */
import { constants, open as fsOpen } from "node:fs/promises";

/** What fstat(2) says an open file is. A TPM device is a `"character"` device. */
export type DeviceFileKind = "character" | "block" | "file" | "directory" | "fifo" | "socket" | "other";

/**
 * One open device file. Errors are thrown as Node does: an `Error` with a string `code` errno
 * (`"EBUSY"`, `"E2BIG"`, ...).
 */
export interface DeviceFile {
  /** Writes `data` in one write(2); resolves with the byte count the kernel took. */
  write(data: Uint8Array): Promise<number>;
  /** One read(2) into `buffer`; resolves with the byte count (0: no response pending yet). */
  read(buffer: Uint8Array): Promise<number>;
  /**
   * fstat(2) of the open file: what it is. The transport calls it after open and before any
   * write, and refuses anything but a character device (so `device:/etc/passwd` writes nothing).
   */
  stat(): Promise<{ kind: DeviceFileKind }>;
  /** Closes the file. */
  close(): Promise<void>;
}

/** Opens device files. */
export interface DeviceFs {
  /** Opens `path` read-write, non-blocking. Rejects with an errno-coded error (`ENOENT`, `EACCES`, `EBUSY`). */
  open(path: string): Promise<DeviceFile>;
}

/**
 * The real thing: `node:fs/promises` with `O_RDWR | O_NONBLOCK` (no O_CREAT, no O_TRUNC: opening never changes a file). The I/O runs on libuv's thread
 * pool, so the event loop never blocks; with O_NONBLOCK the kernel queues the command at
 * write(2) and read(2) hands over the response once it is there (Linux
 * drivers/char/tpm/tpm-dev-common.c, tpm_common_write() and tpm_common_read()). `EAGAIN` from
 * a read is reported as 0 bytes ("not yet").
 */
export const nodeDeviceFs: DeviceFs = {
  async open(path: string): Promise<DeviceFile> {
    const fh = await fsOpen(path, constants.O_RDWR | constants.O_NONBLOCK);
    return {
      async write(data) {
        const r = await fh.write(data, 0, data.length);
        return r.bytesWritten;
      },
      async read(buffer) {
        try {
          const r = await fh.read(buffer, 0, buffer.length, null);
          return r.bytesRead;
        } catch (e) {
          const code = (e as { code?: unknown }).code;
          if (code === "EAGAIN" || code === "EWOULDBLOCK") return 0;
          throw e;
        }
      },
      async stat() {
        const st = await fh.stat();
        const kind: DeviceFileKind = st.isCharacterDevice()
          ? "character"
          : st.isBlockDevice()
            ? "block"
            : st.isFile()
              ? "file"
              : st.isDirectory()
                ? "directory"
                : st.isFIFO()
                  ? "fifo"
                  : st.isSocket()
                    ? "socket"
                    : "other";
        return { kind };
      },
      close: () => fh.close(),
    };
  },
};
