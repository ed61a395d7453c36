-- scripts/folder.lua: the four phases of SS-KD on your own images.
--
--   DIR/train/<class>/*.png|jpg     labelled images, one folder per class
--   DIR/test/<class>/*.png|jpg      test images, the same class folders
--   DIR/unlabeled/**/*.png|jpg      optional: images without classes (any sub-folders)
--
--   sskd run scripts/folder.lua --set root=DIR [--set size=64] [--set channels=1]
--       [--set teacher_weights=mnv2_imagenet.safetensors] [...settings of scripts/protocol.lua]
--
-- Images are resized to one square input size: `size` when set, else the first training
-- image's (its smaller side). Defaults are the paper's, not tuned to any dataset: every labelled image outside a
-- stratified validation split (a tenth of them) is the student's; the teacher (MobileNetV2) is
-- fine-tuned on the same images, from ImageNet weights when `teacher_weights` is given; early
-- stopping watches the validation split and the test split is scored once at the end. The
-- kd_unlabeled phase distils on DIR/unlabeled/ and runs only when that folder has images. Below
-- 64 pixels the models are the small-input variants (stride-1 stems), which keep spatial
-- resolution where torchvision's strides would take the image down to 1x1.
local protocol = dofile((arg[0]:match("^(.*/)") or "") .. "protocol.lua")
local root = arg.root or error("folder.lua: set root=DIR (DIR/train/<class>/, DIR/test/<class>/, optional DIR/unlabeled/)", 0)
local channels = arg.channels or 3
local train = data.image_folder{root = root .. "/train", channels = channels}
local test = data.image_folder{root = root .. "/test", channels = channels}
if table.concat(train.classes, "\0") ~= table.concat(test.classes, "\0") then
  error(("folder.lua: %s/test has classes {%s} but %s/train has {%s}; they must be the same folders"):format(
    root, table.concat(test.classes, ", "), root, table.concat(train.classes, ", ")), 0)
end

-- The input size (square): set, or the first training image's (its smaller side when it is not
-- square; every image is resized to side x side).
local side = arg.size
if not side then
  local img = train:get(0)
  side = math.min(img:size(1), img:size(2))
  print(("input: %dx%d, from the first training image (%dx%d; set size=N to choose)"):format(side, side, img:size(1), img:size(2)))
end
local size = {side, side}

-- The unlabelled images, when DIR/unlabeled has any.
local unlabeled
local ok, found = pcall(data.image_folder, {root = root .. "/unlabeled", channels = channels, labels = false})
if ok then
  unlabeled = found
  print(("unlabeled: %d images in %s/unlabeled"):format(#found, root))
elseif not tostring(found):find("not found or not a directory", 1, true) then
  error(found, 0)
end

local args = {}
for k, v in pairs(arg) do if type(k) == "string" and k ~= "root" and k ~= "size" and k ~= "channels" then args[k] = v end end
local val_size = args.val_size or math.max(#train.classes, #train // 10)
local phases = unlabeled and protocol.defaults.phases or "teacher,alone,kd"
if not unlabeled and args.phases and tostring(args.phases):find("kd_unlabeled") then
  error(("folder.lua: the kd_unlabeled phase needs images in %s/unlabeled/"):format(root), 0)
end
local small = side < 64
local S = protocol.settings({samples = #train - val_size, val_size = val_size, select = "val", teacher = "subset",
                             teacher_model = small and "mobilenet_v2_small_input" or "mobilenet_v2",
                             student = small and "efficientnet_b0_small_input" or "efficientnet_b0",
                             phases = phases, parallel = true}, args)

-- The paper's transforms at this size: its 4-pixel padding is 1/24 of its 96 pixels.
local pad = math.max(1, math.floor(side / 24 + 0.5))
local jitter = channels == 1 and {brightness = 0.2, contrast = 0.2} or {brightness = 0.2, contrast = 0.2, saturation = 0.2}
local name = root:gsub("/+$", ""):match("([^/]+)$") or "folder"
local r = protocol.run(S, {
  name = "folder-" .. name, in_channels = channels, train = train, test = test, unlabeled = unlabeled,
  augment = transforms.compose{
    transforms.resize(size), transforms.hflip(), transforms.rotate(10),
    transforms.random_crop(side, {padding = pad}), transforms.color_jitter(jitter),
  },
  eval_transform = transforms.resize(size),
  child_args = {root = root, size = arg.size, channels = arg.channels},
})
protocol.report(r, ("%s: %d classes, %d labelled samples, %dx%d, seed %d, selection on %s"):format(
  root, #train.classes, S.samples, side, side, S.seed, S.select))
