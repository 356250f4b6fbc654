-- wrk script: POST an order of 25.00 EUR for a random member to BENCH_PATH (the
-- program's /v1/orders or a partner's /v1/partner/orders), each request with its
-- own order_id, also its Idempotency-Key. Settings come from the environment
-- (bench/partners.py); BENCH_RUN differs between wrk runs, so ids never repeat.
local members = tonumber(os.getenv("BENCH_MEMBERS"))
local path = os.getenv("BENCH_PATH")
local api_key = os.getenv("BENCH_API_KEY")
local paid_at = os.getenv("BENCH_PAID_AT")
local run = os.getenv("BENCH_RUN")
local thread_count = 0
local counter = 0
local tag

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_number)
  tag = string.format("%s-%d-%d", run, thread_number, math.random(1, 1000000000))
end

function request()
  counter = counter + 1
  local order_id = tag .. "-" .. counter
  local body = string.format(
    '{"order_id":"%s","member":"m-%d","total":{"amount":"25.00","currency":"EUR"},"paid_at":"%s"}',
    order_id, math.random(1, members), paid_at)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. api_key,
    ["Idempotency-Key"] = order_id,
  }
  return wrk.format("POST", path, headers, body)
end
