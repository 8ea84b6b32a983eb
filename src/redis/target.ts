// The parser lives in lib/ (no imports) so that config/ can validate Redis URLs without importing
// redis/; this is its home for everything that connects.
export { isClusterUrl, parseRedisTarget, type RedisNode, type RedisTarget } from '../lib/redis-target.ts';
