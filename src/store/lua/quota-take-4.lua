--[[
  Takes from several integer counters at once (Store.quotaTake): when every counter has room, adds
  each cost; otherwise writes nothing and names the first counter without room. One script so that
  N concurrent callers against a remaining allowance of K let exactly K through: GETs and INCRBYs
  sent from the client would let them all read the same values.

  A counter has room when current + cost <= limit, and, with a cost of 0 (a check that something is
  left), when current < limit (kept alike in memory-store.ts). A missing counter is 0.

  Input:
    KEYS[1..4] the counters, distinct. A script has a fixed number of keys: only the first ARGV[1]
               are read, the client fills the rest by repeating KEYS[1]

    ARGV[1] n, how many counters, 0 to 4
    ARGV[2] time to live in milliseconds, a positive integer; applied only to a counter this call creates
    ARGV[3 + 2(i-1)] the limit of counter i, a non-negative integer
    ARGV[4 + 2(i-1)] the cost of counter i, a non-negative integer (0 writes nothing)

  Output:
    {0} when every counter had room and every cost was added
    {i, used} when counter i (1-based) is the first without room; used is its current value and
              nothing was written
    errors: WRONGTYPE when a counter is not a string; "ERR value is not an integer or out of range"
            when one holds something that is not an integer (nothing is written then)
]]
local n = tonumber(ARGV[1])
local values = {}
for i = 1, n do
  local value = redis.call("GET", KEYS[i])
  if value then
    -- Like INCRBY, and like the memory store: a canonical integer within 2^53 (a Lua number is a double).
    local number = tonumber(value)
    if not (value == "0" or string.match(value, "^%-?[1-9]%d*$")) or math.abs(number) > 9007199254740991 then
      return redis.error_reply("ERR value is not an integer or out of range")
    end
    values[i] = number
  else
    values[i] = false
  end
end

for i = 1, n do
  local used = values[i] or 0
  local limit = tonumber(ARGV[1 + 2 * i])
  local cost = tonumber(ARGV[2 + 2 * i])
  if used + cost > limit or (cost == 0 and used >= limit) then
    return {i, used}
  end
end

for i = 1, n do
  local cost = ARGV[2 + 2 * i]
  if cost ~= "0" then
    redis.call("INCRBY", KEYS[i], cost)
    if values[i] == false then
      redis.call("PEXPIRE", KEYS[i], ARGV[2])
    end
  end
end
return {0}
