// The `torch` namespace (tensor creation, grad mode, seeds, threads, gradcheck) and `F`
// (functional ops and losses), in PyTorch's names.
import CLua
import CLuaShim
import SSKDTensor

/// Calls the Lua function at `fn` with `args` pushed by `pushArgs`, in protected mode, returning
/// its first result's stack index holder; throws the Lua error message as a Swift error.
func protectedCall(_ c: LuaCall, function fn: Int32, nargs: Int32, pushArgs: () throws -> Void, nresults: Int32) throws {
    try c.reserve(nargs + 4)
    c.pushValue(fn)
    try pushArgs()
    let status = sskd_pcall(c.L, nargs, nresults, 0)
    guard status == LUA_OK else { throw LuaRethrow() }
}

enum TorchBindings {
    static func register() {
        let torch = LuaLibraries.named("torch", doc: "Tensor creation, grad mode, seeds, threads and gradcheck (PyTorch's names).")

        func creator(_ name: String, _ summary: String, _ make: @escaping ([Int]) throws -> Tensor) {
            torch.function(name, "torch.\(name)(size...) or torch.\(name){size} -> Tensor", summary) { c in
                let t = try make(try c.ints(from: 1))
                return c.push(t)
            }
        }
        creator("zeros", "a tensor of zeros") { try Tensor.zeros($0) }
        creator("ones", "a tensor of ones") { try Tensor.ones($0) }
        creator("rand", "uniform values in [0, 1) from the default generator") { try Tensor.rand($0) }
        creator("randn", "standard normal values from the default generator") { try Tensor.randn($0) }
        torch.function("empty", "torch.empty(size...) -> Tensor", "a tensor of the given size (zeroed)") { c in c.push(try Tensor.zeros(try c.ints(from: 1))) }
        torch.function("full", "torch.full(size, value) -> Tensor", "a tensor filled with value (size as a table)") { c in
            c.push(try Tensor.full(try c.intArray(1, what: "size"), try c.float(2)))
        }
        torch.function("tensor", "torch.tensor(data [, {requires_grad=false}]) -> Tensor", "a tensor from a number or nested tables ({{1, 2}, {3, 4}})") { c in
            let t = try tensorFromLua(c, 1)
            let o = try c.options(2)
            let rg = try o.bool("requires_grad", default: false)
            try o.finish()
            t.requiresGrad = rg
            return c.push(t)
        }
        torch.function("arange", "torch.arange([start,] end [, step]) -> Tensor", "start, start+step, ... below end (start defaults to 0)") { c in
            if c.isNoneOrNil(2) { return c.push(try Tensor.arange(try c.float(1))) }
            return c.push(try Tensor.arange(try c.float(1), try c.float(2), step: try c.float(3, default: 1)))
        }
        torch.function("linspace", "torch.linspace(start, end, steps) -> Tensor", "steps evenly spaced values from start to end inclusive") { c in
            let a = try c.number(1), b = try c.number(2), n = try c.int(3)
            guard n >= 0 else { throw c.argError(3, message: "number of steps must be non-negative") }
            let t = try Tensor.zeros([n])
            for i in 0..<n { t.data[i] = Float(n == 1 ? a : a + (b - a) * Double(i) / Double(n - 1)) }
            return c.push(t)
        }
        torch.function("eye", "torch.eye(n [, m]) -> Tensor", "identity matrix n x m") { c in
            let n = try c.int(1), m = try c.int(2, default: n)
            let t = try Tensor.zeros([n, m])
            for i in 0..<min(n, m) { t.data[i * m + i] = 1 }
            return c.push(t)
        }
        func like(_ name: String, _ summary: String, _ make: @escaping (Tensor) throws -> Tensor) {
            torch.function(name, "torch.\(name)(x) -> Tensor", summary) { c in c.push(try make(try c.tensor(1))) }
        }
        like("zeros_like", "zeros shaped like x") { try Tensor.zeros(like: $0) }
        like("ones_like", "ones shaped like x") { try Tensor.ones(like: $0) }
        like("rand_like", "uniform [0, 1) values shaped like x") { try Tensor.rand($0.shape) }
        like("randn_like", "standard normal values shaped like x") { try Tensor.randn($0.shape) }
        torch.function("randint", "torch.randint(low, high, size) -> Tensor", "random integers in [low, high) (as floats), size as a table") { c in
            let lo = try c.int(1), hi = try c.int(2), size = try c.intArray(3, what: "size")
            guard hi > lo else { throw c.argError(2, message: "high must be greater than low") }
            let (span, overflow) = hi.subtractingReportingOverflow(lo)
            guard !overflow else { throw c.argError(2, message: "high - low (\(hi) - \(lo)) is too large") }
            let t = try Tensor.zeros(size)
            for i in 0..<t.count { t.data[i] = Float(Double(lo) + Double(Generator.default.nextInt(span))) }
            return c.push(t)
        }
        torch.function("randperm", "torch.randperm(n) -> Tensor", "a random permutation of 0..n-1") { c in
            let n = try c.int(1)
            guard n >= 0 else { throw c.argError(1, message: "n must be non-negative") }
            // The output and the Int permutation it is built from both pass the memory gate.
            let t = try Tensor.empty([n])
            try MemoryLimit.check(count: n, elementSize: MemoryLayout<Int>.stride, op: "randperm")
            for (i, v) in Generator.default.permutation(n).enumerated() { t.data[i] = Float(v) }
            return c.push(t)
        }
        torch.function("manual_seed", "torch.manual_seed(seed)", "reseeds the default generator") { c in
            let s = try c.int(1)
            Generator.manualSeed(UInt64(bitPattern: Int64(s)))
            return 0
        }
        torch.function("is_tensor", "torch.is_tensor(x) -> boolean", "whether x is a Tensor") { c in c.push(c.toObject(1, Tensor.self) != nil); return 1 }
        torch.function("numel", "torch.numel(x) -> integer", "number of elements of x") { c in c.push(try c.tensor(1).count); return 1 }

        // Grad mode.
        func gradMode(_ name: String, _ enabled: Bool, _ summary: String) {
            torch.function(name, "torch.\(name)(fn, ...) -> results of fn", summary) { c in
                try c.callable(1)
                let saved = GradMode.isEnabled
                GradMode.isEnabled = enabled
                defer { GradMode.isEnabled = saved }
                let n = c.top  // fn at 1, its arguments above: already in call order
                let status = sskd_pcall(c.L, n - 1, LUA_MULTRET, 0)
                guard status == LUA_OK else { throw LuaRethrow() }
                return c.top
            }
        }
        gradMode("no_grad", false, "calls fn(...) with gradient recording off (like `with torch.no_grad():`)")
        gradMode("enable_grad", true, "calls fn(...) with gradient recording on")
        torch.function("is_grad_enabled", "torch.is_grad_enabled() -> boolean", "whether ops record for autograd") { c in c.push(GradMode.isEnabled); return 1 }
        torch.function("set_grad_enabled", "torch.set_grad_enabled(flag)", "switches gradient recording on or off") { c in GradMode.isEnabled = try c.bool(1); return 0 }

        // Joining.
        torch.function("cat", "torch.cat(tensors [, dim=0]) -> Tensor", "concatenates a table of tensors along dim") { c in
            c.push(try Tensor.cat(try c.tensors(1), dim: try c.int(2, default: 0)))
        }
        torch.function("stack", "torch.stack(tensors [, dim=0]) -> Tensor", "stacks equal-shaped tensors along a new dim") { c in
            c.push(try Tensor.stack(try c.tensors(1), dim: try c.int(2, default: 0)))
        }
        torch.function("where", "torch.where(cond, x, y) -> Tensor", "x where cond != 0, else y (numbers allowed; broadcasting)") { c in
            let cond = try c.tensor(1), x = try c.tensorOrNumber(2), y = try c.tensorOrNumber(3)
            // cond * x + (1 - cond) * y with a hard mask, differentiable in x and y.
            let mask = try compare(cond, Tensor.scalar(0), "where") { $0 != $1 }
            return c.push(try mask.mul(x).add(mask.rsub(1).mul(y)))
        }

        // Threads and memory.
        torch.function("set_num_threads", "torch.set_num_threads(n)", "threads used by the kernels (OpenBLAS itself runs single-threaded)") { c in try Runtime.setThreads(try c.int(1)); return 0 }
        torch.function("get_num_threads", "torch.get_num_threads() -> integer", "threads used by the kernels (OpenBLAS itself runs single-threaded)") { c in c.push(Runtime.threads); return 1 }

        // Gradient check.
        torch.function("gradcheck", "torch.gradcheck(fn, {inputs} [, {eps=1e-3, atol=1e-3, rtol=1e-2}]) -> passed, report",
                       "compares autograd gradients of fn(inputs...) with finite differences") { c in
            try c.callable(1)
            let inputs = try c.tensors(2)
            let o = try c.options(3)
            let eps = try o.float("eps", default: 1e-3), atol = try o.float("atol", default: 1e-3), rtol = try o.float("rtol", default: 1e-2)
            try o.finish()
            let report = try gradcheck(inputs, eps: eps, atol: atol, rtol: rtol) { xs in
                let base = c.top
                defer { lua_settop(c.L, base) }
                do {
                    try protectedCall(c, function: 1, nargs: Int32(xs.count), pushArgs: { for x in xs { c.push(x) } }, nresults: 1)
                } catch is LuaRethrow {
                    var len = 0
                    let msg = sskd_tostring(c.L, -1, &len).map { String(cString: $0) } ?? "error in gradcheck function"
                    throw LuaError(msg)
                }
                guard let y = c.toObject(-1, Tensor.self) else { throw LuaError("torch.gradcheck: the function must return a Tensor, got \(c.typeName(-1))") }
                return y
            }
            c.push(report.passed)
            c.pushString(report.description)
            return 2
        }

        // torch.f(x, ...) aliases of tensor methods, as in PyTorch.
        for m in ["exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu", "neg", "clamp", "matmul", "mm", "sum", "mean", "max", "min",
                  "amax", "amin", "argmax", "argmin", "var", "std", "logsumexp", "softmax", "log_softmax", "reshape", "flatten",
                  "squeeze", "unsqueeze", "permute", "transpose", "t", "narrow", "select", "index_select", "gather", "detach",
                  "add", "sub", "mul", "div", "pow", "eq", "ne", "lt", "le", "gt", "ge", "clone"] {
            torch.alias(m, method: m, of: TensorBindings.type)
        }
    }
}

enum FunctionalBindings {
    static func register() {
        let F = LuaLibraries.named("F", doc: "Functional ops and losses, like torch.nn.functional.")

        func activation(_ name: String, _ summary: String, _ f: @escaping (Tensor) throws -> Tensor) {
            F.function(name, "F.\(name)(x) -> Tensor", summary) { c in c.push(try f(try c.tensor(1))) }
        }
        activation("relu", "max(x, 0)") { try $0.relu() }
        activation("relu6", "min(max(x, 0), 6)") { try $0.relu6() }
        activation("silu", "x * sigmoid(x)") { try $0.silu() }
        activation("hardswish", "x * relu6(x + 3) / 6") { try $0.hardswish() }
        activation("hardsigmoid", "relu6(x + 3) / 6") { try $0.hardsigmoid() }
        activation("sigmoid", "1 / (1 + e^-x)") { try $0.sigmoid() }
        activation("tanh", "hyperbolic tangent") { try $0.tanh() }
        F.function("softmax", "F.softmax(x, dim) -> Tensor", "softmax along dim") { c in c.push(try c.tensor(1).softmax(try c.int(2))) }
        F.function("log_softmax", "F.log_softmax(x, dim) -> Tensor", "log-softmax along dim") { c in c.push(try c.tensor(1).logSoftmax(try c.int(2))) }

        func reduction(_ o: Options, _ op: String, default d: String) throws -> Reduction {
            try Reduction(parsing: try o.string("reduction") ?? d, op: op)
        }
        F.function("cross_entropy", "F.cross_entropy(logits, target [, {label_smoothing=0, reduction='mean'}]) -> Tensor",
                   "cross-entropy of logits [N, C] with class indices [N] (0-based) or probabilities [N, C]") { c in
            let x = try c.tensor(1), t = try c.tensor(2)
            let o = try c.options(3)
            let ls = try o.float("label_smoothing", default: 0), r = try reduction(o, "cross_entropy", default: "mean")
            try o.finish()
            return c.push(try x.crossEntropy(t, labelSmoothing: ls, reduction: r))
        }
        F.function("kl_div", "F.kl_div(input, target [, {reduction='mean', log_target=false}]) -> Tensor",
                   "KL divergence with log-probability input (reduction 'batchmean' is the mathematically correct one, as in PyTorch)") { c in
            let x = try c.tensor(1), t = try c.tensor(2)
            let o = try c.options(3)
            let r = try reduction(o, "kl_div", default: "mean"), lt = try o.bool("log_target", default: false)
            try o.finish()
            return c.push(try x.klDiv(t, reduction: r, logTarget: lt))
        }
        F.function("mse_loss", "F.mse_loss(input, target [, {reduction='mean'}]) -> Tensor", "mean squared error (broadcasting)") { c in
            let x = try c.tensor(1), t = try c.tensor(2)
            let o = try c.options(3)
            let r = try reduction(o, "mse_loss", default: "mean")
            try o.finish()
            return c.push(try x.mse(t, reduction: r))
        }
        F.function("nll_loss", "F.nll_loss(log_probs, target [, {reduction='mean'}]) -> Tensor", "negative log-likelihood of log-probabilities [N, C] at class indices [N]") { c in
            let x = try c.tensor(1), t = try c.tensor(2)
            let o = try c.options(3)
            let r = try reduction(o, "nll_loss", default: "mean")
            try o.finish()
            guard r != .batchmean else { throw TensorError("nll_loss", "reduction 'batchmean' is for kl_div") }
            guard x.dim == 2, t.shape == [x.shape[0]] else { throw TensorError("nll_loss", "expected log_probs [N, C] and target [N], got \(x.shape) and \(t.shape)") }
            let picked = try x.gather(1, t.reshape([x.shape[0], 1])).reshape([x.shape[0]]).neg()
            switch r {
            case .none: return c.push(picked)
            case .sum: return c.push(try picked.sum())
            default: return c.push(try picked.mean())
            }
        }
        F.function("conv2d", "F.conv2d(input, weight [, bias] [, {stride=1, padding=0, dilation=1, groups=1}]) -> Tensor",
                   "2-D convolution over NCHW input; weight [Cout, Cin/groups, kH, kW]") { c in
            let x = try c.tensor(1), w = try c.tensor(2)
            var optIndex: Int32 = 3
            var bias: Tensor? = nil
            if let b = c.toObject(3, Tensor.self) { bias = b; optIndex = 4 } else if lua_type(c.L, 3) == LUA_TNIL { optIndex = 4 }
            let o = try c.options(optIndex)
            let stride = try o.ints("stride") ?? [1], padding = try o.ints("padding") ?? [0], dilation = try o.ints("dilation") ?? [1]
            let groups = try o.int("groups", default: 1)
            try o.finish()
            return c.push(try conv2d(x, w, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups))
        }
        F.function("linear", "F.linear(input, weight [, bias]) -> Tensor", "input @ weight^T + bias; weight [out, in]") { c in
            c.push(try linear(try c.tensor(1), try c.tensor(2), bias: try c.optTensor(3)))
        }
        F.function("batch_norm", "F.batch_norm(input, running_mean, running_var [, {weight, bias, training=false, momentum=0.1, eps=1e-5, activation}]) -> Tensor",
                   "batch norm over [N, C, H, W]; in training uses batch statistics and updates the running ones; activation 'relu', 'relu6' or 'silu' is applied after it (fused in training)") { c in
            let x = try c.tensor(1), rm = try c.optTensor(2), rv = try c.optTensor(3)
            let o = try c.options(4)
            let w = try o.object("weight", Tensor.self, expected: "Tensor"), b = try o.object("bias", Tensor.self, expected: "Tensor")
            let training = try o.bool("training", default: false), momentum = try o.float("momentum", default: 0.1), eps = try o.float("eps", default: 1e-5)
            let act = try o.string("activation")
            try o.finish()
            var activation: FusedActivation? = nil
            if let act {
                guard let a = FusedActivation(rawValue: act) else {
                    throw LuaError("F.batch_norm: activation must be 'relu', 'relu6' or 'silu', got '\(act)'")
                }
                activation = a
            }
            return c.push(try batchNorm2d(x, runningMean: rm, runningVar: rv, weight: w, bias: b, training: training, momentum: momentum,
                                          eps: eps, activation: activation))
        }
        func pool(_ name: String, _ summary: String, _ f: @escaping (Tensor, [Int], Options) throws -> Tensor) {
            F.function(name, "F.\(name)(input, kernel_size [, {stride=kernel_size, padding=0, ...}]) -> Tensor", summary) { c in
                let x = try c.tensor(1), k = try c.intOrInts(2, what: "kernel_size")
                let o = try c.options(3)
                let r = try f(x, k, o)
                try o.finish()
                return c.push(r)
            }
        }
        pool("max_pool2d", "2-D max pooling (options: stride, padding, dilation, ceil_mode)") { x, k, o in
            try maxPool2d(x, kernel: k, stride: try o.ints("stride"), padding: try o.ints("padding") ?? [0],
                          dilation: try o.ints("dilation") ?? [1], ceilMode: try o.bool("ceil_mode", default: false))
        }
        pool("avg_pool2d", "2-D average pooling (options: stride, padding, ceil_mode, count_include_pad)") { x, k, o in
            try avgPool2d(x, kernel: k, stride: try o.ints("stride"), padding: try o.ints("padding") ?? [0],
                          ceilMode: try o.bool("ceil_mode", default: false), countIncludePad: try o.bool("count_include_pad", default: true))
        }
        F.function("adaptive_avg_pool2d", "F.adaptive_avg_pool2d(input, output_size) -> Tensor", "average pooling to a fixed output size (integer or {h, w})") { c in
            c.push(try adaptiveAvgPool2d(try c.tensor(1), outputSize: try c.intOrInts(2, what: "output_size")))
        }
        F.function("dropout", "F.dropout(input [, {p=0.5, training=true}]) -> Tensor", "inverted dropout") { c in
            let x = try c.tensor(1)
            let o = try c.options(2)
            let p = try o.float("p", default: 0.5), tr = try o.bool("training", default: true)
            try o.finish()
            return c.push(try dropout(x, p: p, training: tr))
        }
        F.function("stochastic_depth", "F.stochastic_depth(input, p [, {mode='row', training=true}]) -> Tensor", "torchvision's stochastic depth (drops residual branches)") { c in
            let x = try c.tensor(1), p = try c.float(2)
            let o = try c.options(3)
            let modeName = try o.string("mode") ?? "row", tr = try o.bool("training", default: true)
            try o.finish()
            guard let mode = StochasticDepthMode(rawValue: modeName) else { throw LuaError("bad option 'mode' to 'F.stochastic_depth' (expected 'row' or 'batch', got '\(modeName)')") }
            return c.push(try stochasticDepth(x, p: p, mode: mode, training: tr))
        }
    }
}
