-- scripts/sweep.lua: the protocol over several sample counts and seeds; prints a Markdown table
-- of mean and standard deviation of the teacher, student-alone and SS-KD test accuracies.
--
--   sskd run scripts/sweep.lua --set dataset=fashion-mnist samples_list=2500,5000 seeds=0,1,2
--       [root=data/stl10_binary for dataset=stl10] [...settings of scripts/protocol.lua]
local protocol = dofile((arg[0]:match("^(.*/)") or "") .. "protocol.lua")
local dataset = arg.dataset or "fashion-mnist"
local list, seeds = tostring(arg.samples_list or "2500,5000"), tostring(arg.seeds or "0,1,2")
local args = {}
for k, v in pairs(arg) do
  if type(k) == "string" and k ~= "dataset" and k ~= "samples_list" and k ~= "seeds" and k ~= "root" then args[k] = v end
end

local d
if dataset == "fashion-mnist" then
  d = {name = "sweep-fmnist", in_channels = 1, train = data.fashion_mnist{split = "train"}, test = data.fashion_mnist{split = "test"},
       augment = transforms.compose{transforms.hflip(), transforms.rotate(10), transforms.random_crop(28, {padding = 4}),
                                    transforms.color_jitter{brightness = 0.2, contrast = 0.2}}}
  args.teacher = args.teacher or "outside"
  -- The quickstart's teacher: every outside image, 2 epochs, one-cycle LR up to 4e-3.
  args.teacher_images = args.teacher_images or 0
  args.teacher_epochs = args.teacher_epochs or 2
  args.lr_teacher = args.lr_teacher or 4e-3
  args.teacher_schedule = args.teacher_schedule or "onecycle"
elseif dataset == "stl10" then
  local root = arg.root or "data/stl10_binary"
  d = {name = "sweep-stl10", in_channels = 3, train = data.stl10{root = root, split = "train"}, test = data.stl10{root = root, split = "test"},
       augment = transforms.compose{transforms.resize(96), transforms.hflip(), transforms.rotate(10), transforms.random_crop(96, {padding = 4}),
                                    transforms.color_jitter{brightness = 0.2, contrast = 0.2, saturation = 0.2}},
       eval_transform = transforms.resize(96)}
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

local rows, all = {}, {}
for n in list:gmatch("%d+") do
  local acc = {teacher = {}, alone = {}, kd = {}}
  for seed in seeds:gmatch("%d+") do
    args.samples, args.seed = tonumber(n), tonumber(seed)
    args.out = ("runs/%s-%s-s%s"):format(d.name, n, seed)
    -- parallel=true: the child process repeats just this (samples, seed) run.
    d.child_args = {dataset = dataset, samples_list = n, seeds = seed, root = arg.root}
    local r = protocol.run(protocol.settings({}, args), d)
    all[#all + 1] = r
    if r.teacher then acc.teacher[#acc.teacher + 1] = 100 * r.teacher end
    if r.alone then acc.alone[#acc.alone + 1] = protocol.accuracy(r.alone) end
    if r.kd then acc.kd[#acc.kd + 1] = protocol.accuracy(r.kd) end
  end
  rows[#rows + 1] = ("| %s | %d | %s | %s | %s |"):format(n, #acc.teacher, fmt(acc.teacher), fmt(acc.alone), fmt(acc.kd))
end
local md = ("%s: test accuracy (%%), mean ± std over seeds %s\n\n| samples | runs | teacher | student alone | student + SS-KD |\n|---:|---:|---:|---:|---:|\n%s")
  :format(dataset, seeds, table.concat(rows, "\n"))
print("\n" .. protocol.table(all, "every run") .. "\n\n" .. md)
if arg.child_result then return end  -- a child process: its parent writes the table
os.execute("mkdir -p runs")
local f = assert(io.open(("runs/%s.md"):format(d.name), "w")); f:write(md, "\n"); f:close()
