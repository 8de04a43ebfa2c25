-- Admit a request against every bucket that applies, atomically, on Redis time.
-- KEYS[i]: bucket hashes {v = available units, t = last update in ms}; a quota's {v = units
--          used in its period}
-- ARGV: for each bucket i: capacity, refill per ms, cost. A negative refill marks a quota:
--       it never refills, and -refill is the ms until its period ends.
-- Returns {admitted (1/0), failed index (0-based, -1 none), wait ms (-1 = never fits),
--          remaining units of each bucket (floored)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local avail = {}
local failed, wait = -1, 0
for i = 1, n do
  local cap, rate, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local a = cap
  if rate < 0 then
    a = cap - (tonumber(redis.call('HGET', KEYS[i], 'v')) or 0)
  else
    local state = redis.call('HMGET', KEYS[i], 'v', 't')
    if state[1] then
      local elapsed = math.max(0, now - tonumber(state[2]))
      a = math.min(cap, tonumber(state[1]) + elapsed * rate)
    end
  end
  avail[i] = a
  if a < cost then
    local need
    if cost > cap then need = -1 elseif rate < 0 then need = -rate
    else need = math.ceil((cost - a) / rate) end
    if failed < 0 or need == -1 or (wait ~= -1 and need > wait) then
      failed, wait = i - 1, need
    end
  end
end
local out = {0, failed, wait}
if failed < 0 then
  out[1] = 1
  for i = 1, n do
    local cap, rate, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
    avail[i] = avail[i] - cost
    if rate < 0 then
      redis.call('HSET', KEYS[i], 'v', tostring(cap - avail[i]))
      -- Kept an hour past its period: a late settlement still finds it.
      redis.call('PEXPIRE', KEYS[i], -rate + 3600000)
    else
      redis.call('HSET', KEYS[i], 'v', tostring(avail[i]), 't', now)
      -- Forget the bucket once it would be full again anyway.
      redis.call('PEXPIRE', KEYS[i], math.ceil((cap - avail[i]) / rate) + 1000)
    end
  end
end
for i = 1, n do out[3 + i] = math.floor(avail[i]) end
return out
