-- wrk script: POST a paid order for a random member to /v1/orders: two lines (one
-- of them shoes, which a multiplier rewards), a total of their sum, the app or
-- the web channel; each request with its own order_id, also its Idempotency-Key.
-- Settings come from the environment (bench/orders.py); BENCH_RUN differs between
-- wrk runs, so ids never repeat.
local members = tonumber(os.getenv("BENCH_MEMBERS"))
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
  local shoes = math.random(20, 180)
  local shirt = math.random(5, 40)
  local channel = (math.random(1, 2) == 1) and "app" or "web"
  local body = string.format(
    '{"order_id":"%s","member":"m-%d","total":{"amount":"%d.00","currency":"EUR"},'
    .. '"lines":[{"sku":"SHOE-1","category":"shoes","quantity":1,"unit_price":{"amount":"%d.00","currency":"EUR"}},'
    .. '{"sku":"TEE-2","category":"apparel","quantity":2,"unit_price":{"amount":"%d.00","currency":"EUR"}}],'
    .. '"channel":"%s","paid_at":"%s"}',
    order_id, math.random(1, members), shoes + 2 * shirt, shoes, shirt, channel, paid_at)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. api_key,
    ["Idempotency-Key"] = order_id,
  }
  return wrk.format("POST", "/v1/orders", headers, body)
end
