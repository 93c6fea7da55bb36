-- Reads what a listing shows of a user's sessions, without sending their data: for each
-- record in KEYS, its `created_at` and `absolute_expires_at`. Run by EVALSHA/EVAL from
-- src/store/upstash.rs (UpstashStore::list_user); the Rust twin the tests' fake runs is in
-- tests/api/support/fake_upstash.rs. It only reads.
--
-- KEYS the session keys. ARGV[1] the user name as a JSON string, escaped as serde_json writes
-- it: records are written by serde_json, and merge.lua keeps the text of the members it does
-- not change, so a record's `user` is those very bytes.
--
-- Reply: one item per key, in order: nil when the record is missing (ended, idle-expired) or
-- another user's; {created_at, absolute_expires_at} as the record's own digits; 'corrupt'
-- when the record is not a JSON object holding the three members.
--
-- Only top-level members are walked, and only until the three are found; `data`, which every
-- writer puts last, is never scanned. Records from every release have this form (`data` is
-- absent in those from before sessions carried data), so no migration is needed.
-- (string_end, value_end and skip_ws come from json_scan.lua, put in front by upstash.rs.)

local WANTED = { ['"user"'] = true, ['"created_at"'] = true, ['"absolute_expires_at"'] = true }

-- The text of the wanted members of the record s, by key.
local function fields(s)
  if byte(s, 1) ~= 123 then error('not an object') end
  local found, n = {}, 0
  local i = skip_ws(s, 2)
  while true do
    if byte(s, i) ~= 34 then error('bad key') end
    local key_end = string_end(s, i)
    local key = sub(s, i, key_end - 1)
    i = skip_ws(s, key_end)
    if byte(s, i) ~= 58 then error('bad member') end
    i = skip_ws(s, i + 1)
    local v_end = value_end(s, i)
    if WANTED[key] and found[key] == nil then
      found[key] = sub(s, i, v_end - 1)
      n = n + 1
      if n == 3 then return found end
    end
    i = skip_ws(s, v_end)
    if byte(s, i) ~= 44 then error('missing members') end
    i = skip_ws(s, i + 1)
  end
end

local out = {}
for k = 1, #KEYS do
  local record = redis.call('GET', KEYS[k])
  local item = false
  if record then
    local ok, f = pcall(fields, record)
    if not ok then
      item = 'corrupt'
    elseif f['"user"'] == ARGV[1] then
      item = { f['"created_at"'], f['"absolute_expires_at"'] }
    end
  end
  out[k] = item
end
return out
