-- dist at one rank (the test runner is not started by mpirun): every collective keeps or copies
-- the values, objects survive the codec, and bad arguments are errors naming the function.
-- The two-rank behaviour is tested by DistributedTests.swift under mpirun.
local T = require("testlib")

T.test("one rank without mpirun", function()
  T.eq(dist.rank(), 0); T.eq(dist.size(), 1); T.eq(dist.is_main(), true)
  dist.barrier()
end)

T.test("all_reduce, broadcast and all_gather keep the values in place", function()
  for _, op in ipairs{"sum", "mean", "max", "min"} do
    local t = torch.tensor{1, -2, 3}
    T.check(dist.all_reduce(t, op) == t, "all_reduce returns its argument")
    T.values(t, {1, -2, 3})
  end
  local t = torch.tensor{{1, 2}, {3, 4}}
  dist.all_reduce(t)
  T.values(t, {1, 2, 3, 4})
  T.check(dist.broadcast(t, 0) == t)
  local parts = dist.all_gather(t)
  T.eq(#parts, 1); T.shape(parts[1], {2, 2}); T.values(parts[1], {1, 2, 3, 4})
  parts[1]:fill_(0)
  T.values(t, {1, 2, 3, 4}, 0)
end)

T.test("objects round-trip through gather_object and broadcast_object", function()
  local v = {name = "run", n = 3, x = 0.25, ok = true, no = false, list = {1, 2, {3, "four"}},
             [7] = "seven", t = torch.tensor{1.5, 2.5}, huge = math.huge, big = math.maxinteger}
  local all = dist.gather_object(v)
  T.eq(#all, 1)
  local w = all[1]
  T.eq(w.name, "run"); T.eq(w.n, 3); T.eq(math.type(w.n), "integer"); T.eq(w.x, 0.25)
  T.eq(w.ok, true); T.eq(w.no, false); T.eq(w.list[3][2], "four"); T.eq(w[7], "seven")
  T.values(w.t, {1.5, 2.5}); T.eq(w.huge, math.huge); T.eq(w.big, math.maxinteger)
  T.check(w.t ~= v.t, "tensors are copies")
  T.eq(dist.broadcast_object("hello", 0), "hello")
  T.eq(dist.broadcast_object(nil, 0), nil)
  local nan = dist.broadcast_object(0/0, 0)
  T.check(nan ~= nan, "NaN survives")
  T.eq(dist.gather_object(42, 0)[1], 42)
end)

T.test("errors name the function and what is wrong", function()
  local function fails(pattern, f, ...)
    local ok, err = pcall(f, ...)
    T.check(not ok, "expected an error matching " .. pattern)
    T.check(tostring(err):find(pattern, 1, true), "got: " .. tostring(err))
  end
  fails("unknown reduce op 'prod'", dist.all_reduce, torch.zeros(2), "prod")
  fails("bad argument #1 to 'dist.all_reduce'", dist.all_reduce, {1, 2})
  fails("root 1 is not a rank", dist.broadcast, torch.zeros(2), 1)
  fails("root 3 is not a rank", dist.broadcast_object, 1, 3)
  fails("root -1 is not a rank", dist.gather_object, 1, -1)
  fails("value.f is a function", dist.gather_object, {f = print})
  fails("value.a[1] is a Module", dist.broadcast_object, {a = {nn.ReLU()}}, 0)
  fails("table key", dist.gather_object, {[{}] = 1})
  local cycle = {}; cycle.self = cycle
  fails("deeper than 32 levels", dist.gather_object, cycle)
end)

return T.report()
