-- data and transforms from Lua, on the Debian Fashion-MNIST files and on files written here.
local T = require("testlib")

T.test("Fashion-MNIST, splits, items and indices", function()
  local ds = data.fashion_mnist{split = "test"}
  T.eq(#ds, 10000)
  T.eq(ds.classes[1], "T-shirt/top")
  T.check(ds.labeled)
  local img, y = ds:get(0)
  T.shape(img, {1, 28, 28})
  T.eq(y, 9, "the first test image is an ankle boot")
  local item = ds[0]
  T.eq(item[2], 9)
  T.check(img:max():item() <= 1 and img:min():item() >= 0, "scaled to [0, 1]")
  local s, v, rest = ds:split{samples = 100, validation = 50, seed = 3}
  T.eq(#s, 100); T.eq(#v, 50); T.eq(#rest, 9850)
  local counts = s:class_counts()
  for c = 1, 10 do T.eq(counts[c], 10, "stratified") end
  local idx = s:indices()
  T.eq(#idx, 100)
  local s2 = ds:split{samples = 100, seed = 3}
  T.eq(table.concat(s2:indices(), ","), table.concat(idx, ","), "seeded")
  local path = os.tmpname()
  s:save_indices(path)
  local n = 0
  for line in io.lines(path) do n = n + 1; T.eq(tonumber(line), idx[n]) end
  T.eq(n, 100)
  os.remove(path)
  T.check(not ds:unlabeled().labeled)
  T.eq(#ds:subset{0, 5, 7}, 3)
end)

T.test("transforms", function()
  local t = transforms.compose{transforms.hflip(1), transforms.random_crop(28, {padding = 4}), transforms.rotate(10),
                               transforms.color_jitter{brightness = 0.2, contrast = 0.2}}
  T.check(tostring(t):find("Compose", 1, true))
  local img = data.fashion_mnist{split = "test"}:get(0)
  local a, b = t:apply(img, 7), t:apply(img, 7)
  T.shape(a, {1, 28, 28})
  T.eq((a - b):abs():sum():item(), 0, "same seed, same result")
  local flipped = transforms.hflip(1):apply(img)
  T.near(flipped[0][0][0]:item(), img[0][0][27]:item())
  T.shape(transforms.resize(56):apply(img), {1, 56, 56})
end)

T.test("bad input is an error naming the file or option", function()
  T.raises(function() return data.stl10{root = "/nonexistent/stl"} end, "/nonexistent/stl")
  T.raises(function() return data.fashion_mnist{split = "validation"} end, "split must be 'train' or 'test'")
  T.raises(function() return data.fashion_mnist{root = "/nonexistent"} end, "/nonexistent")
  T.raises(function() return data.image_folder{} end, "option 'root' is required")
  local ds = data.fashion_mnist{split = "test"}
  T.raises(function() return ds:get(10000) end, "out of range")
  T.raises(function() return ds:split{samples = 20000} end, "exceed")
  T.raises(function() return ds:split{sample = 10} end, "unknown option 'sample'")
  T.raises(function() return ds:indices() end, "not a subset")
  T.raises(function() return transforms.compose{transforms.hflip(), 3} end, "entry 2 is not a Transform")
  T.raises(function() return transforms.hflip(2) end, "p must be in [0, 1]")
  T.raises(function() return transforms.color_jitter{brightness = -1} end, "brightness")
  -- A truncated STL-10 file written here.
  local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
  local f = io.open(dir .. "/train_X.bin", "wb"); f:write(("\0"):rep(27648 + 5)); f:close()
  f = io.open(dir .. "/train_y.bin", "wb"); f:write("\1"); f:close()
  T.raises(function() return data.stl10{root = dir, split = "train"} end, "train_X.bin")
  os.execute("rm -rf " .. dir)
end)

return T.report()
