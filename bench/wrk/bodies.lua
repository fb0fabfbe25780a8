-- POST chat requests with a distinct ~1 KB prompt each, every Nth one streamed, for the
-- body-logging benchmark (every prompt is stored and indexed, so none may repeat).
-- usage: wrk ... -s bodies.lua <url> -- <json model> <stream model> <prompt bytes> <stream every N (0: never)> [conversation]
-- conversation: what an agent sends instead, the same ~4 KB system prompt on every turn and the
-- whole conversation so far (a ~200-byte user turn and the reply per turn), 16 turns to a
-- conversation, then a new one (as body_log_cpu.py --conversation).
local json_model, stream_model, filler, every = "bench-model", "bench-stream", "", 4
local counter = 0
local conversation, system, user_turn, assistant_turn, turns = false, "", "", "", 16

function init(args)
  json_model = args[1] or json_model
  stream_model = args[2] or stream_model
  local size = tonumber(args[3] or "1000")
  every = tonumber(args[4] or "4")
  local words = "the quick brown fox jumps over the lazy dog "
  filler = string.rep(words, math.floor(size / #words) + 1):sub(1, size)
  conversation = args[5] == "conversation"
  system = string.rep("You are a coding agent. Follow the repository's conventions; run the tests. ", 60):sub(1, 4000)
  user_turn = string.rep("please change the function so that it handles the empty case and add a test ", 3):sub(1, 200)
  assistant_turn = string.rep("I changed parse() to return an empty list early and added test_parse_empty ", 3):sub(1, 200)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer sk-bench-not-a-real-key-0123456789"
end

function request()
  counter = counter + 1
  local stream = every > 0 and counter % every == 0
  local model, s = json_model, ""
  if stream then model, s = stream_model, ',"stream":true' end
  local said
  if conversation then
    local turn, id = counter % turns, math.floor(counter / turns)
    local parts = {'{"role":"system","content":"' .. system .. '"}'}
    for k = 0, turn do
      parts[#parts + 1] = '{"role":"user","content":"' .. id .. ' ' .. k .. ' ' .. user_turn .. '"}'
      if k < turn then parts[#parts + 1] = '{"role":"assistant","content":"' .. assistant_turn .. '"}' end
    end
    said = table.concat(parts, ",")
  else
    said = '{"role":"system","content":"be brief"},{"role":"user","content":"' .. counter .. ' ' .. filler .. '"}'
  end
  local body = '{"model":"' .. model .. '","messages":[' .. said .. '],"max_tokens":32' .. s .. '}'
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"non2xx":%d,"errors":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
