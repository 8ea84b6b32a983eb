import { describe, expect, it } from 'vitest';
import {
  type CacheEnvelope,
  CODEC_MARKER,
  decodeEnvelope,
  encodeEnvelope,
} from '../../src/redis/cache-codec.ts';

const envelope = (v: unknown): CacheEnvelope => ({
  v,
  t: 1,
  d: 20,
  x: 1000,
  s: 2000,
  g: { 'user:1': 7 },
  i: 'abc',
});

describe('cache codec', () => {
  it('round-trips an envelope as marker byte + JSON when it is small', () => {
    const encoded = encodeEnvelope(envelope({ n: 1, s: 'é' }));
    expect(encoded.buffer[0]).toBe(CODEC_MARKER.json);
    expect(encoded.buffer.subarray(1).toString()).toBe(JSON.stringify(envelope({ n: 1, s: 'é' })));
    expect(decodeEnvelope(encoded.buffer)).toEqual({
      envelope: envelope({ n: 1, s: 'é' }),
      bytes: encoded.bytes,
    });
  });

  it('deflates above the threshold, and decodes back to the same value', () => {
    const value = { rows: Array.from({ length: 200 }, (_, i) => ({ id: i, title: 'same words again' })) };
    const encoded = encodeEnvelope(envelope(value), 1024);
    expect(encoded.buffer[0]).toBe(CODEC_MARKER.deflate);
    expect(encoded.buffer.length).toBeLessThan(encoded.bytes / 5);
    expect(decodeEnvelope(encoded.buffer)?.envelope.v).toEqual(value);
  });

  it('keeps incompressible payloads as plain JSON', () => {
    const noise = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 251)).toString('latin1');
    const encoded = encodeEnvelope(envelope(noise), 10);
    expect(decodeEnvelope(encoded.buffer)?.envelope.v).toBe(noise);
  });

  it('treats foreign, unknown-format and corrupt values as no entry', () => {
    expect(decodeEnvelope(null)).toBeUndefined();
    expect(decodeEnvelope(Buffer.from('plain string someone else wrote'))).toBeUndefined();
    expect(decodeEnvelope(Buffer.from('J{not json'))).toBeUndefined();
    expect(decodeEnvelope(Buffer.from('Jnull'))).toBeUndefined();
    expect(
      decodeEnvelope(Buffer.concat([Buffer.of(CODEC_MARKER.deflate), Buffer.from('garbage')])),
    ).toBeUndefined();
  });

  it('keeps undefined as undefined (no value field) and dates as ISO strings', () => {
    expect(decodeEnvelope(encodeEnvelope(envelope(undefined)).buffer)?.envelope.v).toBeUndefined();
    expect(decodeEnvelope(encodeEnvelope(envelope(new Date(0))).buffer)?.envelope.v).toBe(
      '1970-01-01T00:00:00.000Z',
    );
  });
});
