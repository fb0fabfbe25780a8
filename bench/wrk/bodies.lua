-- POST chat requests with a distinct ~1 KB prompt each, every Nth one streamed, for the
-- body-logging benchmark (every prompt is stored and indexed, so none may repeat).
-- usage: wrk ... -s bodies.lua <url> -- <json model> <stream model> <prompt bytes> <stream every N (0: never)>
local json_model, stream_model, filler, every = "bench-model", "bench-stream", "", 4
local counter = 0

function init(args)
  json_model = args[1] or json_model
  stream_model = args[2] or stream_model
  local size = tonumber(args[3] or "1000")
  every = tonumber(args[4] or "4")
  local words = "the quick brown fox jumps over the lazy dog "
  filler = string.rep(words, math.floor(size / #words) + 1):sub(1, size)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer sk-bench-not-a-real-key-0123456789"
end

function request()
  counter = counter + 1
  local stream = every > 0 and counter % every == 0
  local model, s = json_model, ""
  if stream then model, s = stream_model, ',"stream":true' end
  local body = '{"model":"' .. model .. '","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"'
    .. counter .. ' ' .. filler .. '"}],"max_tokens":32' .. s .. '}'
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
