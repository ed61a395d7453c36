-- scripts/quickstart.lua: the SS-KD protocol (../shared/PAPER.md) on Fashion-MNIST from the
-- Debian package, all four phases: the teacher, the student alone, the student with SS-KD, and
-- SS-KD plus distillation on the images without labels. Prints their test accuracies side by
-- side and writes runs/<out>/ (metrics, checkpoints, plots, results.md). The data and the
-- measured defaults are in scripts/fashion_mnist.lua; every protocol setting can be changed:
--
--   sskd run scripts/quickstart.lua [--set key=value ...]     (settings: scripts/protocol.lua)
local here = arg[0]:match("^(.*/)") or ""
local protocol = dofile(here .. "protocol.lua")
local fm = dofile(here .. "fashion_mnist.lua")
local S = protocol.settings(fm.defaults, arg)
local r = protocol.run(S, fm.data("quickstart"))
protocol.report(r, ("Fashion-MNIST, %d samples, seed %d, selection on %s"):format(S.samples, S.seed, S.select))
