//! The Lua scripts that make the Redis store's writes atomic.
//!
//! Each script touches the keys of one client id only, which share a hash tag, so it
//! runs on one node of a Redis Cluster. The scripts run with EVALSHA (loaded again on
//! `NOSCRIPT`); nothing uses WATCH, which is unsafe on a multiplexed connection.
//!
//! The replay window in [`COMMIT`] is the rule of `mte_relay_protocol::replay`,
//! written again in Lua because Redis must decide it atomically; a test runs both on
//! the same sequences and compares every answer.

use mte_relay_protocol::replay::{MAX_SEQUENCE_AHEAD, WINDOW_SIZE};
use redis::Script;

/// Field names of a pair's hash.
pub mod field {
    /// Generation: a random 64-bit number, decimal; a commit must name it.
    pub const GENERATION: &str = "gen";
    /// Sealed MKE root, creation and expiry times; never changes.
    pub const RECORD: &str = "rec";
    /// The MTE ratchet's epoch, decimal, in the clear (sequence numbers show it anyway).
    pub const EPOCH: &str = "epoch";
    /// Sealed MTE ratchet, overwritten as it advances.
    pub const RATCHET: &str = "ratchet";
    // Two more fields are read and written by [`super::COMMIT`] only: `hi`, the
    // highest accepted sequence number (decimal; absent before the first), and `win`,
    // the window's bitmap (bit `seq % WINDOW_SIZE` of byte `bit / 8`, least
    // significant bit first).
}

/// `KEYS[1]` the pair's hash. `ARGV`: generation, sequence number, the MTE epoch the
/// message used (empty for MKE), the ratchet's new epoch and its sealed state (both
/// empty unless the message moved it), and a random id of this commit. Returns `ok`,
/// `missing`, `replaced`, `epoch-erased`, `duplicate`, `too-old` or `too-far-ahead`;
/// writes only on `ok`. A commit sent again with the same id (the cluster client
/// resends after a dropped connection, and the first attempt may have landed) answers
/// `ok` again instead of `duplicate`.
///
/// With `KEYS[2]` (a resend token of the same client, so the same slot), `ARGV[7]` this
/// claim's value and `ARGV[8]` the token's expiry: once the number is marked, the token
/// is recorded too, in the same round trip; `already-forwarded` when another claim
/// holds it (the number stays consumed).
const COMMIT: &str = r#"
local W = __WINDOW__
local AHEAD = __AHEAD__
local stored = redis.call('HMGET', KEYS[1], 'gen', 'epoch', 'hi', 'win', 'last')
if not stored[1] then return 'missing' end
if stored[1] ~= ARGV[1] then return 'replaced' end
if stored[5] == ARGV[6] then return 'ok' end
local epoch = tonumber(stored[2])
if ARGV[3] ~= '' and tonumber(ARGV[3]) + 1 < epoch then return 'epoch-erased' end
local seq = tonumber(ARGV[2])
local hi = stored[3] and tonumber(stored[3])
local bytes = {}
if stored[4] and #stored[4] == W / 8 then
  bytes = {string.byte(stored[4], 1, W / 8)}
else
  for i = 1, W / 8 do bytes[i] = 0 end
end
local function position(s)
  local index = s % W
  return math.floor(index / 8) + 1, 2 ^ (index % 8)
end
if hi then
  if seq > hi then
    if seq - hi > AHEAD then return 'too-far-ahead' end
  else
    if hi - seq >= W then return 'too-old' end
    local b, mask = position(seq)
    if bit.band(bytes[b], mask) ~= 0 then return 'duplicate' end
  end
elseif seq >= AHEAD then
  return 'too-far-ahead'
end
if hi and seq <= hi then
  -- inside the window: only its own bit changes
elseif hi and seq - hi < W then
  for skipped = hi + 1, seq - 1 do
    local b, mask = position(skipped)
    bytes[b] = bit.band(bytes[b], bit.bnot(mask))
  end
  hi = seq
else
  for i = 1, W / 8 do bytes[i] = 0 end
  hi = seq
end
local b, mask = position(seq)
bytes[b] = bit.bor(bytes[b], mask)
redis.call('HSET', KEYS[1], 'hi', string.format('%.0f', hi), 'win', string.char(unpack(bytes)), 'last', ARGV[6])
if ARGV[4] ~= '' and tonumber(ARGV[4]) > epoch then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[4], 'ratchet', ARGV[5])
end
if KEYS[2] then
  local held = redis.call('SET', KEYS[2], ARGV[7], 'NX', 'GET', 'EXAT', ARGV[8])
  if held and held ~= ARGV[7] then return 'already-forwarded' end
end
return 'ok'
"#;

/// `KEYS[1]` the client's index (sorted set of its pair ids, oldest first), `KEYS[2]`
/// its insertion counter, `KEYS[3..]` the new pairs' hashes. `ARGV[1]` the per-client
/// cap, `ARGV[2]` the prefix that makes a pair id the name of its hash (the index holds
/// the short ids, which Redis stores compactly), then six values per pair: pair id,
/// generation, sealed record, epoch, sealed ratchet, Unix time the key expires.
/// Returns `{'exists', i}` (0-based) and writes nothing when a key exists, else
/// `{'ok', t1, t2, ...}` with the expiry time of each pair it evicted to stay within
/// the cap. A batch sent again whose pairs all exist with its own generations (an
/// earlier attempt landed) answers `{'ok'}`.
///
/// The pair hashes it checks and evicts through the index are not declared in `KEYS`
/// (the script finds them). They share the client's hash tag, so they live in the
/// declared keys' slot, which is what Redis Cluster requires of a script.
const INSERT: &str = r#"
local pairs = #KEYS - 2
local ours = 0
for i = 3, #KEYS do
  local existing = redis.call('HGET', KEYS[i], 'gen')
  if existing then
    if existing ~= ARGV[3 + (i - 3) * 6 + 1] then return {'exists', i - 3} end
    ours = ours + 1
  end
end
if ours == pairs then return {'ok'} end
if ours > 0 then return {'exists', 0} end
local prefix = ARGV[2]
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', prefix .. member) == 0 then redis.call('ZREM', KEYS[1], member) end
end
local last = redis.call('INCRBY', KEYS[2], pairs)
local latest = 0
for i = 1, pairs do
  local at = 3 + (i - 1) * 6
  local key = KEYS[2 + i]
  redis.call('HSET', key, 'gen', ARGV[at + 1], 'rec', ARGV[at + 2], 'epoch', ARGV[at + 3], 'ratchet', ARGV[at + 4])
  redis.call('EXPIREAT', key, ARGV[at + 5])
  redis.call('ZADD', KEYS[1], last - pairs + i, ARGV[at])
  latest = math.max(latest, tonumber(ARGV[at + 5]))
end
local result = {'ok'}
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], over)
  for j = 1, #popped, 2 do
    local key = prefix .. popped[j]
    table.insert(result, redis.call('EXPIRETIME', key))
    redis.call('DEL', key)
  end
end
for k = 1, 2 do
  if redis.call('EXPIRETIME', KEYS[k]) < latest then redis.call('EXPIREAT', KEYS[k], latest) end
end
return result
"#;

/// `KEYS[1]` a resend token, `ARGV[1]` the claim value one relay wrote. Deletes the
/// token only when it still holds that claim: a relay whose write timed out (and may
/// have landed) withdraws its own claim, never another copy's.
const WITHDRAW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// The store's scripts, each hashed once.
pub struct Scripts {
    pub commit: Script,
    pub insert: Script,
    pub withdraw: Script,
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripts").finish_non_exhaustive()
    }
}

impl Scripts {
    pub fn new() -> Scripts {
        let commit = COMMIT
            .replace("__WINDOW__", &WINDOW_SIZE.to_string())
            .replace("__AHEAD__", &MAX_SEQUENCE_AHEAD.to_string());
        Scripts {
            commit: Script::new(&commit),
            insert: Script::new(INSERT),
            withdraw: Script::new(WITHDRAW),
        }
    }
}

/// The largest sequence number the scripts compute exactly: Lua numbers are doubles.
/// A client reaches it after 2^37 requests at the least (each may skip 65,536 ahead);
/// past it the relay refuses the number as too far ahead.
pub const MAX_EXACT_SEQUENCE: u64 = 1 << 53;
