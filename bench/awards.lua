-- wrk script: POST an award of 10 points to a random member, each request with
-- its own Idempotency-Key. Settings come from the environment (bench/awards.py).
local members = tonumber(os.getenv("BENCH_MEMBERS"))
local prefix = os.getenv("BENCH_PATH_PREFIX")
local suffix = os.getenv("BENCH_PATH_SUFFIX")
local api_key = os.getenv("BENCH_API_KEY")
local body = '{"points":10,"reason":"bench"}'
local thread_count = 0
local counter = 0
local tag

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_number)
  tag = string.format("%d-%d-%d", os.time(), thread_number, math.random(1, 1000000000))
end

function request()
  counter = counter + 1
  local path = prefix .. "m-" .. math.random(1, members) .. suffix
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. api_key,
    ["Idempotency-Key"] = tag .. "-" .. counter,
  }
  return wrk.format("POST", path, headers, body)
end
