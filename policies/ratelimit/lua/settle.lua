-- Settle reserved costs against real ones, on Redis time.
-- KEYS[i]: bucket hashes; ARGV: for each bucket: capacity, refill per ms, delta (real -
-- reserved). A negative refill marks a quota (see admit.lua): its used units move by delta.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  local cap, rate, delta = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  if rate < 0 then
    local used = math.max(0, (tonumber(redis.call('HGET', KEYS[i], 'v')) or 0) + delta)
    redis.call('HSET', KEYS[i], 'v', tostring(used))
    redis.call('PEXPIRE', KEYS[i], -rate + 3600000)
  else
    local state = redis.call('HMGET', KEYS[i], 'v', 't')
    local a = cap
    if state[1] then
      a = math.min(cap, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
    end
    a = math.min(cap, a - delta)
    redis.call('HSET', KEYS[i], 'v', tostring(a), 't', now)
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - a) / rate) + 1000)
  end
end
return #KEYS
