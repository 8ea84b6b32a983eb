import { deflateRawSync, inflateRawSync } from 'node:zlib';

/**
 * A cache-aside entry as stored in Redis: the value plus what readers need to decide whether to use
 * it without another round trip.
 */
export interface CacheEnvelope<T = unknown> {
  /** The value (JSON: dates come back as strings; `undefined` stays `undefined`). */
  v: T;
  /** Created at (ms since epoch). */
  t: number;
  /** How long the loader took (ms): XFetch's δ. */
  d: number;
  /** Fresh until (ms since epoch), jitter included. */
  x: number;
  /** May be served stale (while revalidating) until (ms since epoch); equals `x` without a window. */
  s: number;
  /** Tag → version the value was built under. */
  g?: Record<string, number>;
  /** Random id of this entry, carried by the key event so a process can tell its own write apart. */
  i: string;
}

/**
 * First byte of every encoded entry. Readable in `redis-cli`: `J{"v":…}`. A new format gets a new
 * marker; readers treat an unknown one as a miss, so old and new clients can share a Redis.
 */
export const CODEC_MARKER = { json: 0x4a /* J */, deflate: 0x5a /* Z */ } as const;

/** Entries whose JSON is larger than this are deflated. @defaultValue 1024 (Rails' default) */
export const COMPRESS_ABOVE_BYTES = 1024;

export interface Encoded {
  buffer: Buffer;
  /** Uncompressed JSON size: what an in-process copy costs, roughly. */
  bytes: number;
}

export function encodeEnvelope(envelope: CacheEnvelope, compressAbove = COMPRESS_ABOVE_BYTES): Encoded {
  const json = Buffer.from(JSON.stringify(envelope));
  if (json.length > compressAbove) {
    const packed = deflateRawSync(json);
    // Incompressible payloads (already-compressed blobs) are kept as they are.
    if (packed.length < json.length) {
      return { buffer: Buffer.concat([Buffer.of(CODEC_MARKER.deflate), packed]), bytes: json.length };
    }
  }
  return { buffer: Buffer.concat([Buffer.of(CODEC_MARKER.json), json]), bytes: json.length };
}

/** The envelope in `buffer`, or undefined when it is not one (foreign value, unknown format, corrupt). */
export function decodeEnvelope<T = unknown>(
  buffer: Buffer | null | undefined,
): { envelope: CacheEnvelope<T>; bytes: number } | undefined {
  if (!buffer || buffer.length < 2) return undefined;
  try {
    let json: Buffer;
    if (buffer[0] === CODEC_MARKER.json) json = buffer.subarray(1);
    else if (buffer[0] === CODEC_MARKER.deflate) json = inflateRawSync(buffer.subarray(1));
    else return undefined;
    const envelope = JSON.parse(json.toString('utf8')) as CacheEnvelope<T>;
    if (typeof envelope !== 'object' || envelope === null || typeof envelope.x !== 'number') return undefined;
    return { envelope, bytes: json.length };
  } catch {
    return undefined;
  }
}
