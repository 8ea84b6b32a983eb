import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isLoopback } from '../config/config.ts';

/** The browser session cookie's name. */
export const SESSION_COOKIE = 'vk_session';

export interface Auth {
  /** False when no token is configured (loopback only): every request is let in. */
  required: boolean;
  /** `Authorization: Bearer <token>`, or the session cookie a browser got by logging in. */
  authenticated(req: IncomingMessage): boolean;
  /** Whether `candidate` is the token (constant time). */
  isToken(candidate: string): boolean;
  /** The Set-Cookie header that logs a browser in for its session. */
  sessionCookie(): string;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

/**
 * Token checks. The session cookie is a random value made when the daemon starts, never the token or
 * anything derived from it: a leaked cookie dies with the process, and no page ever carries the
 * token. HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends it).
 */
export function createAuth(token: string | undefined): Auth {
  const expected = token === undefined ? undefined : digest(token);
  const session = randomBytes(32).toString('base64url');
  const sessionDigest = digest(session);
  const matches = (candidate: string, against: Buffer) => timingSafeEqual(digest(candidate), against);

  return {
    required: expected !== undefined,
    isToken: (candidate) => expected !== undefined && matches(candidate, expected),
    authenticated(req) {
      if (!expected) return true;
      const header = req.headers.authorization;
      if (header?.startsWith('Bearer ')) return matches(header.slice(7).trim(), expected);
      const presented = cookie(req, SESSION_COOKIE);
      return presented !== undefined && matches(presented, sessionDigest);
    },
    sessionCookie: () => `${SESSION_COOKIE}=${session}; HttpOnly; SameSite=Strict; Path=/`,
  };
}

/**
 * A state-changing request must come from this server's own pages (or from a program, which sends
 * no Origin). Browsers send `Origin` on every cross-site POST and `Sec-Fetch-Site` on every request;
 * either one naming another site refuses it, whatever credentials it carries.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/**
 * Without a token the server listens on loopback only, and a page on another site can still reach
 * it by rebinding its own name to 127.0.0.1: refuse requests whose Host is not a loopback name.
 */
export function loopbackHost(req: IncomingMessage): boolean {
  const host = req.headers.host;
  if (!host) return false;
  try {
    return isLoopback(new URL(`http://${host}`).hostname);
  } catch {
    return false;
  }
}
