-- Run by DistributedTests.swift under `mpirun -np 2`: the dist API between two ranks. Any wrong
-- value raises an error (which ends both ranks with a non-zero status).
local r, n = dist.rank(), dist.size()
assert(n == 2, "expected 2 ranks, got " .. n)
local function near(a, b, what) if math.abs(a - b) > 1e-6 then error(("%s: expected %g, got %g"):format(what, b, a)) end end

local t = torch.tensor{r + 1, 10 * (r + 1)}
dist.all_reduce(t, "sum"); near(t:tolist()[1], 3, "sum"); near(t:tolist()[2], 30, "sum")
local m = torch.tensor{r + 1}; dist.all_reduce(m, "mean"); near(m:item(), 1.5, "mean")
local x = torch.tensor{r == 0 and 5 or -5}; dist.all_reduce(x, "max"); near(x:item(), 5, "max")
local y = torch.tensor{r == 0 and 5 or -5}; dist.all_reduce(y, "min"); near(y:item(), -5, "min")
local b = torch.tensor{r, r}; dist.broadcast(b, 1); near(b:tolist()[1], 1, "broadcast")
local g = dist.all_gather(torch.tensor{{r}})
assert(#g == 2, "all_gather: 2 tensors"); near(g[1]:item(), 0, "all_gather[1]"); near(g[2]:item(), 1, "all_gather[2]")

local objs = dist.gather_object({rank = r, name = "rank" .. r, t = torch.tensor{r}}, 0)
if r == 0 then
  assert(objs[1].name == "rank0" and objs[2].name == "rank1" and objs[2].rank == 1, "gather_object on root")
  near(objs[2].t:item(), 1, "gather_object tensor")
else
  assert(objs == nil, "gather_object: nil off the root")
end
assert(dist.broadcast_object(r == 1 and {v = "from 1"} or "ignored", 1).v == "from 1", "broadcast_object")

-- Ranks that disagree get the same error on every rank instead of a hang.
local ok, err = pcall(dist.all_reduce, torch.zeros(r + 1))
assert(not ok and tostring(err):find("rank 0 has shape [1], rank 1 has shape [2]", 1, true), "shape mismatch: " .. tostring(err))
ok, err = pcall(dist.broadcast_object, 1, r)
assert(not ok and tostring(err):find("disagree on the root", 1, true), "root mismatch: " .. tostring(err))
dist.barrier()
if dist.is_main() then print("collectives ok") end
