-- ARGV: prefix, uid, r (the tap's uniform draw), u (uniform for the amount)
local m = meta()
if not m then return LOST end
local uid = ARGV[2]
local now = now_s()
local d = open_drop(m, now)
if not d then return {'ok', 'nothing', 'no_drop_open'} end
local dk = K('d:' .. d)
local e = redis.call('HMGET', dk, 'eodds', 'codds', 'left')
local r = tonumber(ARGV[3])
if r < tonumber(e[1]) then
  local left = tonumber(e[3])
  if left <= 0 then return {'ok', 'nothing', 'pool_empty'} end
  if redis.call('SISMEMBER', K('won:' .. d), uid) == 1 then return {'ok', 'nothing', 'already_won'} end
  local top = math.min(m.maxenv, left)
  local amount = math.min(math.floor(tonumber(ARGV[4]) * top) + 1, top)
  local id = redis.call('INCR', K('seq:env')) - 1
  redis.call('HINCRBY', dk, 'left', -amount)
  redis.call('HSET', K('ea'), id, amount)
  redis.call('HSET', K('eo'), id, uid)
  redis.call('HSET', K('ed'), id, d)
  redis.call('SADD', K('ue:' .. uid), id)
  redis.call('SADD', K('won:' .. d), uid)
  return {'ok', 'envelope', id, amount, tonumber(d)}
end
for bound, kind in string.gmatch(e[2], '([^,;]+),([^,;]+)') do
  if r < tonumber(bound) then
    if redis.call('EXISTS', K('draw')) == 1 then return {'ok', 'nothing', 'game_closed'} end
    local cap = tonumber(redis.call('HGET', K('meta'), 'cap' .. kind))
    if cap >= 0 and tonumber(redis.call('HGET', K('ci'), kind) or '0') >= cap then return {'ok', 'nothing', 'no_luck'} end
    local id = redis.call('INCR', K('seq:card')) - 1
    redis.call('HSET', K('ck'), id, kind)
    redis.call('HSET', K('co'), id, uid)
    redis.call('HINCRBY', K('ci'), kind, 1)
    redis.call('SADD', K('uc:' .. uid), id)
    return {'ok', 'card', id, kind}
  end
end
return {'ok', 'nothing', 'no_luck'}
