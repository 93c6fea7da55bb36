-- Merges a JSON merge patch (RFC 7396) into the `data` of one session record, atomically.
-- Run by EVALSHA/EVAL from src/store/upstash.rs; the Rust twin is AppData::merge in
-- src/domain/app_data.rs, and the store suite checks that both give the same bytes.
--
-- KEYS[1] the session key. ARGV[1] the patch: a JSON object in canonical form (compact,
-- keys escaped as serde_json writes them, no duplicate keys), so equal keys are equal bytes.
-- ARGV[2] the idle TTL in seconds. ARGV[3] now, unix milliseconds. ARGV[4] the most bytes
-- the serialized data may take.
--
-- Replies: {"ok", record} written with the idle TTL; {"gone"} no such session (nothing is
-- written: a patch racing a logout never brings the session back); {"expired"} past its
-- absolute lifetime, now deleted; {"too_large", size} nothing written; {"corrupt"}.
--
-- No cjson: it decodes numbers to doubles (1234567890123456789 and 0.1234567890123456789
-- come back changed) and encodes an empty array as {}. Values are sliced out of the text as
-- they are; only objects the patch reaches into are walked.
-- (string_end, value_end and skip_ws come from json_scan.lua, put in front by upstash.rs.)
local concat = table.concat

-- The members of the object whose text is s: keys in order, and each value's text by key.
local function members(s)
  local keys, vals = {}, {}
  if byte(s, 1) ~= 123 then error('not an object') end
  local i = skip_ws(s, 2)
  if byte(s, i) == 125 then return keys, vals end
  while true do
    if byte(s, i) ~= 34 then error('bad key') end
    local key_end = string_end(s, i)
    local key = sub(s, i, key_end - 1)
    i = skip_ws(s, key_end)
    if byte(s, i) ~= 58 then error('bad member') end
    i = skip_ws(s, i + 1)
    local v_end = value_end(s, i)
    if vals[key] == nil then keys[#keys + 1] = key end
    vals[key] = sub(s, i, v_end - 1)
    i = skip_ws(s, v_end)
    local c = byte(s, i)
    if c == 125 then return keys, vals end
    if c ~= 44 then error('bad object') end
    i = skip_ws(s, i + 1)
  end
end

local function serialize(keys, vals)
  local out = {}
  for _, k in ipairs(keys) do
    local v = vals[k]
    if v ~= nil then out[#out + 1] = k .. ':' .. v end
  end
  return '{' .. concat(out, ',') .. '}'
end

-- MergePatch(target, patch): target is a value's text or nil, patch an object's text.
local function merge(target, patch)
  local keys, vals = {}, {}
  if target and byte(target, 1) == 123 then keys, vals = members(target) end
  local patch_keys, patch_vals = members(patch)
  for _, k in ipairs(patch_keys) do
    local v = patch_vals[k]
    if v == 'null' then
      vals[k] = nil
    else
      if byte(v, 1) == 123 then v = merge(vals[k], v) end
      if vals[k] == nil then keys[#keys + 1] = k end
      vals[k] = v
    end
  end
  return serialize(keys, vals)
end

local record = redis.call('GET', KEYS[1])
if not record then return {'gone'} end
local ok, keys, vals = pcall(members, record)
if not ok then return {'corrupt'} end
local expires = tonumber(vals['"absolute_expires_at"'])
if not expires then return {'corrupt'} end
if tonumber(ARGV[3]) >= expires * 1000 then
  redis.call('DEL', KEYS[1])
  return {'expired'}
end
local merged_ok, data = pcall(merge, vals['"data"'], ARGV[1])
if not merged_ok then return {'corrupt'} end
if #data > tonumber(ARGV[4]) then return {'too_large', #data} end
if vals['"data"'] == nil then keys[#keys + 1] = '"data"' end
vals['"data"'] = data
record = serialize(keys, vals)
redis.call('SET', KEYS[1], record, 'EX', ARGV[2])
return {'ok', record}
