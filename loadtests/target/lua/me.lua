-- ARGV: prefix, uid. Held envelopes as (id, amount, drop, parent or -1), cards as (id, kind), friends.
local u = redis.call('HMGET', K('u:' .. ARGV[2]), 'name', 'win')
if not u[1] then return LOST end
local envs, cards = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', K('ue:' .. ARGV[2]))) do
  envs[#envs + 1] = tonumber(id)
  envs[#envs + 1] = tonumber(redis.call('HGET', K('ea'), id))
  envs[#envs + 1] = tonumber(redis.call('HGET', K('ed'), id))
  envs[#envs + 1] = tonumber(redis.call('HGET', K('ep'), id) or '-1')
end
for _, id in ipairs(redis.call('SMEMBERS', K('uc:' .. ARGV[2]))) do
  cards[#cards + 1] = tonumber(id)
  cards[#cards + 1] = tonumber(redis.call('HGET', K('ck'), id))
end
return {'ok', u[1], tonumber(u[2]), envs, cards, redis.call('SMEMBERS', K('f:' .. ARGV[2]))}
