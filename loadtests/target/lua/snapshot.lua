-- ARGV: prefix. The whole state at one instant, for the audit (read-only; blocks Redis while it reads).
local m = meta()
if not m then return LOST end
local el = now_s() - m.started
local c = redis.call('MGET', K('seq:user'), K('seq:env'), K('seq:card'), K('seq:drop'), K('seq:msg'), K('gifts'), K('slots'))
for i = 1, 7 do c[i] = tonumber(c[i] or '0') end
local drops = {}
for id = 1, c[4] do
  local d = redis.call('HMGET', K('d:' .. id), 'pool', 'left')
  drops[#drops + 1] = tonumber(d[1] or '-1')
  drops[#drops + 1] = tonumber(d[2] or '-1')
end
local held_e, held_c, wins, links, missing = {}, {}, {}, 0, 0
for uid = 1, c[1] do
  for _, id in ipairs(redis.call('SMEMBERS', K('ue:' .. uid))) do
    held_e[#held_e + 1] = uid
    held_e[#held_e + 1] = tonumber(id)
  end
  for _, id in ipairs(redis.call('SMEMBERS', K('uc:' .. uid))) do
    held_c[#held_c + 1] = uid
    held_c[#held_c + 1] = tonumber(id)
  end
  local w = redis.call('HGET', K('u:' .. uid), 'win')
  if not w then missing = missing + 1 end
  wins[uid] = tonumber(w or '0')
  links = links + redis.call('SCARD', K('f:' .. uid))
end
local function all(key) return redis.call('HGETALL', K(key)) end
return {'ok', fmt(el), c, drops, all('ea'), all('eo'), all('ed'), all('ep'), all('ek'), all('ck'), all('co'), all('ci'),
        held_e, held_c, wins, links, missing, all('draw'), redis.call('LRANGE', K('draw:w'), 0, -1)}
