// Redis Cluster key slots, computed on the client so that keys one atomic step needs together can be
// grouped (one script call per slot) and so that a lock can be named into its entry's slot. The same
// rule as Redis: CRC16 (XMODEM) of the key, or of its hash tag — the text between the first `{` and
// the first `}` after it, when that text is not empty — modulo 16384.

export const SLOTS = 16384;

let table: Uint16Array | undefined;

function crcTable(): Uint16Array {
  if (table) return table;
  table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[byte] = crc & 0xffff;
  }
  return table;
}

function crc16(text: string): number {
  const lookup = crcTable();
  let crc = 0;
  const step = (byte: number) => {
    crc = ((crc << 8) ^ lookup[((crc >> 8) ^ byte) & 0xff]!) & 0xffff;
  };
  // ASCII keys (the usual case) without allocating a buffer; anything else as its UTF-8 bytes.
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) {
      crc = 0;
      for (const byte of Buffer.from(text, 'utf8')) step(byte);
      return crc;
    }
    step(code);
  }
  return crc;
}

/** The text Redis hashes for `key`: its hash tag when it has a non-empty one, else the whole key. */
export function hashedPart(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

/** The cluster slot of `key` (0–16383). */
export function slotOf(key: string): number {
  return crc16(hashedPart(key)) % SLOTS;
}

/** Whether `prefix` carries a hash tag (`{vk}`), so every key under it lands in one slot. */
export function hasHashTag(prefix: string): boolean {
  return hashedPart(prefix) !== prefix;
}

let tags: string[] | undefined;

/**
 * A short hash tag content that hashes to `slot` (`slotOf(tagForSlot(s)) === s`). The table of all
 * 16384 is found once, by counting up in base 36 until every slot has one (about 170,000 CRCs of 1–4
 * characters, some 50 ms, on a cluster's first lock only).
 */
export function tagForSlot(slot: number): string {
  if (!tags) {
    const found: string[] = new Array(SLOTS);
    let missing = SLOTS;
    for (let n = 0; missing > 0; n++) {
      const text = n.toString(36);
      const s = slotOf(text);
      if (found[s] === undefined) {
        found[s] = text;
        missing -= 1;
      }
    }
    tags = found;
  }
  return tags[slot]!;
}

/**
 * `name` if it already hashes to `slot`, else `name` with a hash tag for `slot` inserted after
 * `head` (or, should `head` carry a brace of its own, in front of everything): a key Redis puts in
 * `slot`, still readable as `head…`.
 */
export function inSlot(head: string, tail: string, slot: number): string {
  const plain = `${head}${tail}`;
  if (slotOf(plain) === slot) return plain;
  const tagged = `${head}{${tagForSlot(slot)}}${tail}`;
  return slotOf(tagged) === slot ? tagged : `{${tagForSlot(slot)}}${plain}`;
}

/** Groups `keys` by slot, keeping each key's index in `keys` (insertion order within a group). */
export function groupBySlot(keys: readonly string[]): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  keys.forEach((key, index) => {
    const slot = slotOf(key);
    const group = groups.get(slot);
    if (group) group.push(index);
    else groups.set(slot, [index]);
  });
  return groups;
}
