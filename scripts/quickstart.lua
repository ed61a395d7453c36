-- scripts/quickstart.lua: the SS-KD protocol (../shared/PAPER.md) on Fashion-MNIST from the
-- Debian package: 28x28 grayscale, models with one input channel. Prints teacher, student-alone
-- and SS-KD accuracies side by side and writes runs/<out>/ (metrics, checkpoints, plots).
--
--   sskd run scripts/quickstart.lua [--set key=value ...]     (settings: scripts/protocol.lua)
--
-- There are no ImageNet weights for Fashion-MNIST, so the teacher is pre-trained on labelled
-- images OUTSIDE the student's subset, standing in for the paper's ImageNet pretraining
-- (teacher=subset trains it on the student's own samples instead: a weak teacher that drags the
-- student down). The full protocol: --set teacher_images=0 teacher_epochs=25.
local protocol = dofile((arg[0]:match("^(.*/)") or "") .. "protocol.lua")
-- Defaults sized for a short run: the teacher sees 10000 outside images for 5 epochs, and early
-- stopping watches a 1000-image validation split (the clean protocol: the test split is scored
-- once, at the end); --set select=test selects on the test split as the paper's script did.
local S = protocol.settings({teacher = "outside", teacher_images = 10000, teacher_epochs = 5, select = "val", val_size = 1000}, arg)

local r = protocol.run(S, {
  name = "quickstart", in_channels = 1,
  train = data.fashion_mnist{split = "train"}, test = data.fashion_mnist{split = "test"},
  -- The paper's train transform at 28x28 (grayscale: brightness and contrast only).
  augment = transforms.compose{
    transforms.hflip(), transforms.rotate(10), transforms.random_crop(28, {padding = 4}),
    transforms.color_jitter{brightness = 0.2, contrast = 0.2},
  },
})
protocol.report(r, ("Fashion-MNIST, %d samples, seed %d, selection on %s"):format(S.samples, S.seed, S.select))
