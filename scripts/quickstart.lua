-- scripts/quickstart.lua: the SS-KD protocol (../shared/PAPER.md) on Fashion-MNIST from the
-- Debian package: 28x28 grayscale, models with one input channel. Prints teacher, student-alone
-- and SS-KD accuracies side by side and writes runs/<out>/ (metrics, checkpoints, plots).
--
--   sskd run scripts/quickstart.lua [--set key=value ...]     (settings: scripts/protocol.lua)
--
-- There are no ImageNet weights for Fashion-MNIST, so the teacher is pre-trained on the labelled
-- images OUTSIDE the student's subset (and outside the validation split), standing in for the
-- paper's ImageNet pretraining; teacher=subset trains it on the student's own samples instead (a
-- weak teacher that drags the student down).
local protocol = dofile((arg[0]:match("^(.*/)") or "") .. "protocol.lua")
-- Defaults sized for 15 minutes on 2 cores: 2500 samples; the teacher sees every outside image
-- (56500) twice with a one-cycle LR up to 4e-3 (a short pre-training from scratch; the paper's
-- constant 5e-4 needs far more epochs); the teacher trains on augmented images like the student
-- does, because SS-KD queries it on the student's augmented batches (a teacher trained on clean
-- images scored 43 % on them). Early stopping watches a 1000-image validation split (the clean
-- protocol: the test split is scored once, at the end); select=test selects on the test split as
-- the paper's script did. parallel=true trains the student alone in a second process beside the
-- teacher (one thread each). The full protocol:
--   --set samples=5000 --set teacher_epochs=25 --set lr_teacher=5e-4 --set teacher_schedule=constant
local S = protocol.settings({samples = 2500, teacher = "outside", teacher_images = 0, teacher_epochs = 2,
                             lr_teacher = 4e-3, teacher_schedule = "onecycle", select = "val", val_size = 1000,
                             parallel = true}, arg)

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
