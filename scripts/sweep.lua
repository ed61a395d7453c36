-- scripts/sweep.lua: the protocol over several sample counts and seeds; prints and writes a
-- Markdown table of the mean and standard deviation (over seeds) of every phase's test accuracy,
-- with the wall time of the runs.
--
--   sskd run scripts/sweep.lua [--set dataset=fashion-mnist] [--set samples_list=2500,5000]
--       [--set seeds=0,1,2] [root=data/stl10_binary for dataset=stl10] [...protocol settings]
--
-- Fashion-MNIST runs use the quickstart's defaults (scripts/fashion_mnist.lua), so the seed-0
-- run at the quickstart's sample count trains the very teacher the quickstart reuses from the
-- cache. Each seed draws its own subset, so each (samples, seed) pair has its own teacher.
--
-- Under mpirun (`mpirun -np 8 sskd run scripts/sweep.lua ...`) the (samples x seed x phase) runs
-- are dealt out over the ranks, each trained by its rank alone (distributed = false); a teacher
-- is trained by the first rank that needs it while the others wait for it in the cache (a lock
-- file per entry), and rank 0 gathers every rank's results into the same table.
local here = arg[0]:match("^(.*/)") or ""
local protocol = dofile(here .. "protocol.lua")
local dataset = arg.dataset or "fashion-mnist"
local list, seeds = tostring(arg.samples_list or "2500,5000"), tostring(arg.seeds or "0,1,2")
local args = {}
for k, v in pairs(arg) do
  if type(k) == "string" and k ~= "dataset" and k ~= "samples_list" and k ~= "seeds" and k ~= "root" then args[k] = v end
end

local d, defaults
if dataset == "fashion-mnist" then
  local fm = dofile(here .. "fashion_mnist.lua")
  d, defaults = fm.data("sweep-fmnist"), fm.defaults
elseif dataset == "stl10" then
  local root = arg.root or "data/stl10_binary"
  d = {name = "sweep-stl10", in_channels = 3, train = data.stl10{root = root, split = "train"}, test = data.stl10{root = root, split = "test"},
       augment = transforms.compose{transforms.resize(96), transforms.hflip(), transforms.rotate(10), transforms.random_crop(96, {padding = 4}),
                                    transforms.color_jitter{brightness = 0.2, contrast = 0.2, saturation = 0.2}},
       eval_transform = transforms.resize(96)}
  if tostring(args.phases or protocol.defaults.phases):find("kd_unlabeled") then d.unlabeled = data.stl10{root = root, split = "unlabeled"} end
  defaults = {teacher = "subset"}
else
  error("dataset must be 'fashion-mnist' or 'stl10', got '" .. tostring(dataset) .. "'")
end

local function stats(xs)
  local n, m = #xs, 0
  if n == 0 then return nil end
  for _, x in ipairs(xs) do m = m + x end
  m = m / n
  local v = 0
  for _, x in ipairs(xs) do v = v + (x - m) ^ 2 end
  return m, n > 1 and math.sqrt(v / (n - 1)) or 0
end
local function fmt(xs) local m, s = stats(xs) return m and ("%.2f ± %.2f"):format(m, s) or "-" end
local clock = sskd.clock

local columns = {"teacher", "alone", "kd", "kd_unlabeled"}
local rows, all = {}, {}
local started = clock()

-- The units of work: one per (samples, seed) in one process; one per (samples, seed, student
-- phase) over several ranks, dealt out round-robin.
local ranks, rank = dist.size(), dist.rank()
local phases = {}
for p in tostring(args.phases or protocol.defaults.phases):gmatch("[^,]+") do
  if p ~= "teacher" or ranks == 1 then phases[#phases + 1] = p end
end
if #phases == 0 then phases = {"teacher"} end
local units = {}
for n in list:gmatch("%d+") do
  for seed in seeds:gmatch("%d+") do
    if ranks == 1 then units[#units + 1] = {n = n, seed = seed}
    else for _, p in ipairs(phases) do units[#units + 1] = {n = n, seed = seed, phase = p} end end
  end
end
local mine = {}
for i, u in ipairs(units) do
  if (i - 1) % ranks == rank then
    args.samples, args.seed = tonumber(u.n), tonumber(u.seed)
    args.out = ("runs/%s-%s-s%s"):format(d.name, u.n, u.seed)
    if u.phase then
      -- This rank's share: one phase, trained here alone (the teacher comes from the cache, or
      -- is trained here while other ranks needing it wait).
      args.phases, args.parallel, args.distributed = u.phase, false, false
    end
    -- parallel=true: a child process repeats just this (samples, seed) run.
    d.child_args = {dataset = dataset, samples_list = u.n, seeds = u.seed, root = arg.root}
    local t0 = clock()
    local r = protocol.run(protocol.settings(defaults, args), d)
    r.minutes = (clock() - t0) / 60
    mine[#mine + 1] = {n = u.n, seed = u.seed, result = r}
  end
end
if ranks > 1 then
  local gathered = dist.gather_object(mine, 0)
  if not dist.is_main() then return end
  mine = {}
  for _, part in ipairs(gathered) do for _, m in ipairs(part) do mine[#mine + 1] = m end end
end
-- One result per (samples, seed): the phases run on different ranks merged, minutes added up.
local merged, order = {}, {}
for _, m in ipairs(mine) do
  local k = m.n .. "/" .. m.seed
  local r = merged[k]
  if not r then
    r = m.result
    merged[k], order[#order + 1] = r, k
  else
    for _, p in ipairs{"teacher", "teacher_info", "alone", "kd", "kd_unlabeled", "unlabeled_images"} do
      if r[p] == nil then r[p] = m.result[p] end
    end
    r.minutes = r.minutes + m.result.minutes
  end
end
if ranks > 1 then
  for _, k in ipairs(order) do merged[k].settings.phases = table.concat(phases, ",") end
end

for n in list:gmatch("%d+") do
  local acc = {teacher = {}, alone = {}, kd = {}, kd_unlabeled = {}, minutes = {}}
  for seed in seeds:gmatch("%d+") do
    local r = merged[n .. "/" .. seed]
    all[#all + 1] = r
    if r.teacher then acc.teacher[#acc.teacher + 1] = 100 * r.teacher end
    for _, p in ipairs{"alone", "kd", "kd_unlabeled"} do
      if r[p] then acc[p][#acc[p] + 1] = protocol.accuracy(r[p]) end
    end
    acc.minutes[#acc.minutes + 1] = r.minutes
  end
  local parts = {n, #acc.minutes}
  for _, c in ipairs(columns) do parts[#parts + 1] = fmt(acc[c]) end
  parts[#parts + 1] = fmt(acc.minutes)
  rows[#rows + 1] = "| " .. table.concat(parts, " | ") .. " |"
end
local md = ("%s: test accuracy (%%), mean ± std over seeds %s; wall time of one run (minutes, teacher included unless reused; over ranks, the sum of its phases' times)" .. (ranks > 1 and (", " .. ranks .. " ranks") or "") .. "; %.1f minutes in all\n\n"
  .. "| samples | runs | teacher | student alone | student + SS-KD | SS-KD + unlabeled | minutes per run |\n|---:|---:|---:|---:|---:|---:|---:|\n%s")
  :format(dataset, seeds, (clock() - started) / 60, table.concat(rows, "\n"))
print("\n" .. protocol.table(all, "every run") .. "\n\n" .. md)
if arg.child_result then return end  -- a child process: its parent writes the table
os.execute("mkdir -p runs")
local f = assert(io.open(("runs/%s.md"):format(d.name), "w")); f:write(md, "\n"); f:close()
