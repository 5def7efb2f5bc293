-- ARGV: prefix, uid, envelope_id, max_ways, random (1: amounts were drawn for this envelope), n, to x n, amounts...
if not has_meta() then return LOST end
local uid, env = ARGV[2], ARGV[3]
local amt = redis.call('HGET', K('ea'), env)
if not amt then return reject(404, 'unknown envelope', 'envelope_id') end
amt = tonumber(amt)
if redis.call('HGET', K('eo'), env) ~= uid then return reject(403, 'not your envelope', 'envelope_id') end
if redis.call('HEXISTS', K('ek'), env) == 1 then return reject(409, 'envelope already split', 'envelope_id') end
local maxw, n = tonumber(ARGV[4]), tonumber(ARGV[6])
if n < 1 or n > maxw then return reject(400, 'to must list 1..' .. maxw .. ' friends', 'to') end
for i = 1, n do
  local bad = friend_check(uid, ARGV[6 + i], 'to')
  if bad then return bad end
end
local given = #ARGV - 6 - n
if ARGV[5] == '1' and amt < n then return reject(400, 'cannot split ' .. amt .. ' fen ' .. n .. ' ways', 'to') end
if given ~= n then return reject(400, 'amounts_fen must have one amount per friend in to', 'amounts_fen') end
local amounts, sum = {}, 0
for i = 1, n do
  amounts[i] = tonumber(ARGV[6 + n + i])
  sum = sum + amounts[i]
end
for i = 1, n do
  if amounts[i] < 1 then return reject(400, 'every amount must be >= 1 fen', 'amounts_fen') end
end
if sum ~= amt then return reject(400, "amounts must sum exactly to the envelope's " .. amt .. ' fen', 'amounts_fen') end
local drop = redis.call('HGET', K('ed'), env)
local kids, out = {}, {'ok'}
for i = 1, n do
  local to = ARGV[6 + i]
  local id = redis.call('INCR', K('seq:env')) - 1
  redis.call('HSET', K('ea'), id, amounts[i])
  redis.call('HSET', K('eo'), id, to)
  redis.call('HSET', K('ed'), id, drop)
  redis.call('HSET', K('ep'), id, env)
  redis.call('SADD', K('ue:' .. to), id)
  kids[i] = id
  out[#out + 1] = id
  out[#out + 1] = tonumber(to)
  out[#out + 1] = amounts[i]
end
redis.call('HSET', K('ek'), env, table.concat(kids, ','))
redis.call('SREM', K('ue:' .. uid), env)
return out
