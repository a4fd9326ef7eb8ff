--[[
  Sets fields of a hash and its time to live in one step (Store.hset with ttlMs). HSET then PEXPIRE
  from the client costs two commands, and a client that died in between would leave the hash
  without a TTL forever.

  Input:
    KEYS[1] the hash

    ARGV[1] time to live in milliseconds, a positive integer
    ARGV[2..] field, value, field, value, ...

  Output:
    the number of fields that were new (integer)
    errors: WRONGTYPE when KEYS[1] is not a hash (nothing is written then)
]]
local added = redis.call("HSET", KEYS[1], unpack(ARGV, 2))
redis.call("PEXPIRE", KEYS[1], ARGV[1])
return added
