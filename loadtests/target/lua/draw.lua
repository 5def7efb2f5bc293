-- ARGV: prefix. The five-card draw: holders of all five kinds share the pool equally, in whole fen.
if not has_meta() then return LOST end
if redis.call('EXISTS', K('draw')) == 1 then return reject(409, 'the five-card draw has already been made', '') end
local pool = tonumber(redis.call('HGET', K('meta'), 'bpool'))
local kind_of, co = {}, redis.call('HGETALL', K('co'))
local ck = redis.call('HGETALL', K('ck'))
for i = 1, #ck, 2 do kind_of[ck[i]] = ck[i + 1] end
local seen, kinds = {}, {}
for i = 1, #co, 2 do
  local owner, kind = co[i + 1], kind_of[co[i]]
  local key = owner .. ':' .. kind
  if not seen[key] then
    seen[key] = true
    kinds[owner] = (kinds[owner] or 0) + 1
  end
end
local winners = {}
for owner, n in pairs(kinds) do
  if n == 5 then winners[#winners + 1] = tonumber(owner) end
end
table.sort(winners)
local n, share, rem = #winners, 0, pool
if n > 0 then
  share = math.floor(pool / n)  -- doubles are exact below 2^53; correct any rounding of the division
  while share * n > pool do share = share - 1 end
  while (share + 1) * n <= pool do share = share + 1 end
  rem = pool - share * n
end
for _, w in ipairs(winners) do redis.call('HINCRBY', K('u:' .. w), 'win', share) end
redis.call('HSET', K('draw'), 'pool', pool, 'share', share, 'rem', rem, 'n', n)
for i = 1, n, 1000 do
  redis.call('RPUSH', K('draw:w'), unpack(winners, i, math.min(i + 999, n)))
end
return {'ok', pool, share, rem, winners}
