-- Run by DistributedTests.swift, at one rank and under `mpirun -np 2`: a few SGD steps of a tiny
-- CNN on Fashion-MNIST with a global batch of 32 (one rank x 32 or two ranks x 16), then every
-- rank saves its weights to arg.out .. ".rank<r>.safetensors" and rank 0 its result to
-- arg.out .. ".json".
--
--   --set model=plain   no batch norm: the weights must match one rank's up to float rounding
--   --set model=bn      batch norm normalising each rank's shard with its own statistics; at
--                       one rank the batch is split the same way (ghost batch norm), so that
--                       everything but the running statistics must match
--   --set fail_rank=r   rank r raises an error in the middle of training (failure test)
--   --set nan_rank=r    rank r's forward turns NaN in its second epoch (a NaN loss on one rank)
--   --set seed=s        the run's seed (ranks given different seeds must refuse to start)
--   --set run=DIR --set resume=true   continue a run directory (same number of ranks only)
local out, kind = assert(arg.out, "--set out=PATH"), arg.model or "plain"
local all = data.fashion_mnist{split = "test"}
-- 145 images: 4 full batches of 32 and a last one of 17, split 8 / 9 over two ranks.
local train, eval = all:split{samples = 145, validation = 50, seed = 3}
-- Every rank initialises differently: training must start from rank 0's weights.
torch.manual_seed(7 + dist.rank())

local function shards(n, parts)
  local bounds = {}
  for p = 0, parts do bounds[#bounds + 1] = n * p // parts end
  return bounds
end
local GhostBatchNorm = nn.Module{name = "GhostBatchNorm",
  init = function(self, c) self.bn = nn.BatchNorm2d(c) end,
  forward = function(self, x)
    -- Two ranks each see their shard; one rank sees the global batch and normalises the two
    -- shards it is made of separately, exactly as the ranks do.
    local parts = 2 // dist.size()
    if parts <= 1 or x:size(0) < 2 then return self.bn(x) end
    local b, ys = shards(x:size(0), parts), {}
    for p = 1, parts do ys[p] = self.bn(x:narrow(0, b[p], b[p + 1] - b[p])) end
    return torch.cat(ys)
  end}

local layers = {nn.Conv2d(1, 4, 3, {stride = 2, padding = 1})}
if kind == "bn" then layers[#layers + 1] = GhostBatchNorm(4) end
for _, l in ipairs{nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 10)} do layers[#layers + 1] = l end
local nan_epoch_hook
if arg.nan_rank then
  local epochs_seen = 0
  local Poison = nn.Module{name = "Poison", forward = function(self, x)
    if self.training and dist.rank() == arg.nan_rank and x:size(0) > 0 and epochs_seen >= 1 then return x * (0 / 0) end
    return x
  end}
  layers[#layers + 1] = Poison()
  nan_epoch_hook = function(e) epochs_seen = e end
end
local m = nn.Sequential(layers)

local epoch_hook = nan_epoch_hook
if arg.fail_rank then
  epoch_hook = function(e) if e == 1 and dist.rank() == arg.fail_rank then error("deliberate failure on this rank") end end
end
if dist.is_main() then m:save(out .. ".init.safetensors") end  -- rank 0's initial weights, which every rank starts from
local r = fit{model = m, train = train, eval = eval, epochs = 2, batch = 32, seed = arg.seed or 5, quiet = true,
              optimizer = optim.SGD{lr = 0.05, momentum = 0.9}, augment = transforms.hflip(), on_epoch_start = epoch_hook,
              run = arg.run, resume = arg.resume}
m:save(("%s.rank%d.safetensors"):format(out, dist.rank()))
if dist.is_main() then
  local f = assert(io.open(out .. ".json", "w"))
  f:write(("{\"accuracy\": %.17g, \"train_loss\": %.17g, \"epochs\": %d}\n"):format(r.accuracy, r.history[#r.history].train_loss, r.epochs))
  f:close()
end
