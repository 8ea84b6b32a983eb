// The one redaction point: every line viewkeeper prints or logs, and every message of an error it
// raises about a connection, passes through redactSecrets().
//
// URL credentials are masked by their shape. That is not enough: libraries report a password without
// its URL (ioredis attaches `command: { name: 'auth', args: ['<password>'] }` to a refused AUTH,
// and an inspected error prints it). So the passwords of the configured URLs are also remembered
// (rememberSecrets, called where configuration is read) and masked wherever they appear, raw and
// URL-encoded.

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)([^/@\s:]*)(:[^/@\s]*)?@/gi;
const MASK = '***';
/** Shorter secrets are masked only inside URLs: masking every "ab" would make output unreadable. */
const MIN_LITERAL_LENGTH = 3;

const secrets = new Set<string>();
let literal: RegExp | undefined;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Adds `value` (and its URL-encoded and decoded forms) to the secrets masked in every output. */
export function rememberSecret(value: string | undefined): void {
  if (!value) return;
  const forms = [value, encodeURIComponent(value)];
  try {
    forms.push(decodeURIComponent(value));
  } catch {}
  let added = false;
  for (const form of forms) {
    if (form.length >= MIN_LITERAL_LENGTH && !secrets.has(form)) {
      secrets.add(form);
      added = true;
    }
  }
  if (added) {
    // Longest first, so a secret that contains another is masked whole.
    const alternatives = [...secrets].sort((a, b) => b.length - a.length).map(escapeRegExp);
    literal = new RegExp(alternatives.join('|'), 'g');
  }
}

/** Remembers the password of each connection URL (unparsable values are skipped: they were refused). */
export function rememberUrlSecrets(urls: readonly (string | undefined)[]): void {
  for (const url of urls) {
    if (!url) continue;
    try {
      const parsed = new URL(url.trim());
      rememberSecret(parsed.password);
    } catch {}
    // URLs WHATWG cannot parse (a cluster URL's comma-separated hosts): the credentials by their shape.
    for (const match of url.matchAll(URL_CREDENTIALS)) rememberSecret(match[3]?.slice(1));
  }
}

/**
 * Masks the password of every URL inside `text` (`redis://user:secret@host` → `redis://user:***@host`)
 * and every remembered secret. Used on everything that may reach a log line or an error message.
 */
export function redactSecrets(text: string): string {
  const masked = text.replace(URL_CREDENTIALS, (_match, scheme: string, user: string, password?: string) =>
    password ? `${scheme}${user}:${MASK}@` : `${scheme}${user}@`,
  );
  return literal ? masked.replace(literal, MASK) : masked;
}

/** `host:port` of a connection URL, for error messages that must name the endpoint and nothing secret. */
export function endpointOf(url: string, defaultPort: number): string {
  // A cluster URL lists several seeds (redis+cluster://a:1,b:2): name the first, and say it is one.
  const cluster = /^rediss?\+cluster:\/\/(?:[^@/]*@)?([^,/]+)/i.exec(url.trim());
  if (cluster) return `cluster ${cluster[1]}`;
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || '127.0.0.1'}:${parsed.port || defaultPort}`;
  } catch {
    return redactSecrets(url);
  }
}
