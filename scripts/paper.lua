-- scripts/paper.lua: SS-KD on STL-10 as the paper ran it (../shared/PAPER.md): MobileNetV2
-- teacher fine-tuned 25 epochs (Adam 5e-4), EfficientNet-B0 student alone and with SS-KD
-- (Adam 1e-3, at most 30 epochs, patience 5, T = 3, the gradual alpha), 96x96 RGB, for 2500 and
-- 5000 labelled samples; prints the paper's table. A fourth phase, kd_unlabeled, also distils
-- the teacher on STL-10's 100000 unlabelled images (unlabeled_ratio batches of them beside each
-- labelled batch): the "self-supervised" setting the dataset was made for.
--
--   sskd run scripts/paper.lua --set root=data/stl10_binary [teacher_weights=mnv2_imagenet.safetensors]
--       [samples_list=2500,5000] [select=test|val] [...settings of scripts/protocol.lua]
--
-- ImageNet weights: scripts/reference/export_torchvision.py writes them as safetensors from a
-- local torchvision checkpoint. Without them the teacher trains from scratch (said loudly).
local protocol = dofile((arg[0]:match("^(.*/)") or "") .. "protocol.lua")
local root = arg.root or "data/stl10_binary"
local list = tostring(arg.samples_list or "2500,5000")
local args = {}
for k, v in pairs(arg) do if type(k) == "string" and k ~= "root" and k ~= "samples_list" then args[k] = v end end

local train = data.stl10{root = root, split = "train"}
local test = data.stl10{root = root, split = "test"}
-- kd_unlabeled distils on STL-10's own unlabelled split (100000 images, memory-mapped).
local unlabeled
local wants_unlabeled = tostring(arg.phases or protocol.defaults.phases):find("kd_unlabeled") ~= nil
if wants_unlabeled then
  local f = io.open(root .. "/unlabeled_X.bin", "rb")
  if not f then
    error(("paper.lua: the kd_unlabeled phase needs %s/unlabeled_X.bin (STL-10's unlabelled split); "
      .. "leave the phase out with --set phases=teacher,alone,kd"):format(root), 0)
  end
  f:close()
  unlabeled = data.stl10{root = root, split = "unlabeled"}
end
local augment = transforms.compose{
  transforms.resize(96), transforms.hflip(), transforms.rotate(10),
  transforms.random_crop(96, {padding = 4}),
  transforms.color_jitter{brightness = 0.2, contrast = 0.2, saturation = 0.2},
}
local runs = {}
for n in list:gmatch("%d+") do
  args.samples = tonumber(n)
  local S = protocol.settings({teacher = "subset"}, args)
  local r = protocol.run(S, {name = "paper", in_channels = 3, train = train, test = test, augment = augment,
                             eval_transform = transforms.resize(96), unlabeled = unlabeled,
                             child_args = {root = root, samples_list = tostring(S.samples)}})
  protocol.report(r, ("STL-10, %d samples, seed %d, selection on %s"):format(S.samples, S.seed, S.select))
  runs[#runs + 1] = r
end
print("\n" .. protocol.table(runs, "STL-10 (paper: 72.71 % with 2500 samples, 83.00 % with 5000, SS-KD)"))
