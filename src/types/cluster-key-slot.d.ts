// cluster-key-slot ships no types; it is the slot function ioredis itself uses.
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot (0–16383) of `key`, honouring hash tags. */
  function calculateSlot(key: string | Buffer): number;
  export default calculateSlot;
}
