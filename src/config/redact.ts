const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)([^/@\s:]*)(:[^/@\s]*)?@/gi;

/**
 * Masks the password of every URL inside `text` (`redis://user:secret@host` → `redis://user:***@host`).
 * Used on everything that may reach a log line or an error message.
 */
export function redactSecrets(text: string): string {
  return text.replace(URL_CREDENTIALS, (_match, scheme: string, user: string, password?: string) =>
    password ? `${scheme}${user}:***@` : `${scheme}${user}@`,
  );
}

/** `host:port` of a connection URL, for error messages that must name the endpoint and nothing secret. */
export function endpointOf(url: string, defaultPort: number): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || '127.0.0.1'}:${parsed.port || defaultPort}`;
  } catch {
    return redactSecrets(url);
  }
}
