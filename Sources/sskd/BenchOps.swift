import ArgumentParser
import Foundation
import SSKDData
import SSKDTensor

/// One benchmarked op at one shape. The same list drives `scripts/reference/bench_ops.py`
/// (`sskd bench ops --spec` prints it), so both sides time exactly the same work.
struct OpCase: Codable {
    var op: String            // conv2d, batch_norm, relu6, silu, sigmoid, max_pool2d, avg_pool2d, adaptive_avg_pool2d, linear, dropout, stochastic_depth
    var name: String          // where the shape occurs
    var input: [Int]
    var weight: [Int]? = nil  // conv2d [O, C/g, k, k]; linear [out, in]
    var stride: Int? = nil
    var padding: Int? = nil
    var groups: Int? = nil
    var bias: Bool? = nil
    var kernel: Int? = nil    // pools
    var output: Int? = nil    // adaptive pool size
    var p: Float? = nil       // dropout / stochastic depth

    var shapeLabel: String {
        var s = input.map(String.init).joined(separator: "x")
        if op == "conv2d", let w = weight {
            s += " \(input[1])->\(w[0]) k\(w[2]) s\(stride ?? 1)" + ((groups ?? 1) > 1 ? " g\(groups!)" : "")
        }
        if op == "linear", let w = weight { s += " ->\(w[0])" }
        if let k = kernel { s += " k\(k) s\(stride ?? k)" }
        if let o = output { s += " ->\(o)" }
        return s
    }
}

/// Distinct op shapes of MobileNetV2 and EfficientNet-B0 (torchvision) at 96x96 input, batch 32.
func benchCases(batch b: Int) -> [OpCase] {
    var cases: [OpCase] = []
    func conv(_ name: String, _ c: Int, _ o: Int, _ hw: Int, k: Int, s: Int = 1, depthwise: Bool = false, bias: Bool = false) {
        cases.append(OpCase(op: "conv2d", name: name, input: [b, c, hw, hw], weight: [o, depthwise ? 1 : c, k, k], stride: s,
                            padding: (k - 1) / 2, groups: depthwise ? c : 1, bias: bias))
    }
    // Stem (both nets).
    conv("stem", 3, 32, 96, k: 3, s: 2)
    // Depthwise 3x3 / 5x5 at stride 1 and 2 (m = MobileNetV2, e = EfficientNet-B0).
    for (c, hw) in [(32, 48), (144, 24), (192, 12), (384, 6), (576, 6), (960, 3), (240, 12), (480, 6), (1152, 3)] {
        conv("dw3 s1 " + (c == 32 || c == 144 ? "m,e" : [240, 480, 1152].contains(c) ? "e" : "m"), c, c, hw, k: 3, depthwise: true)
    }
    for (c, hw) in [(96, 48), (144, 24), (192, 12), (576, 6), (240, 12)] {
        conv("dw3 s2 " + (c == 96 ? "m,e" : c == 240 ? "e" : "m"), c, c, hw, k: 3, s: 2, depthwise: true)
    }
    for (c, hw) in [(240, 12), (480, 6), (672, 6), (1152, 3)] { conv("dw5 s1 e", c, c, hw, k: 5, depthwise: true) }
    for (c, hw) in [(144, 24), (672, 6)] { conv("dw5 s2 e", c, c, hw, k: 5, s: 2, depthwise: true) }
    // 1x1 expand / project / head convolutions.
    let pointwise: [(Int, Int, Int, String)] = [
        (32, 16, 48, "m,e"), (16, 96, 48, "m,e"), (96, 24, 24, "m,e"), (24, 144, 24, "m,e"), (144, 24, 24, "m,e"),
        (144, 32, 12, "m"), (32, 192, 12, "m"), (192, 32, 12, "m"), (144, 40, 12, "e"), (40, 240, 12, "e"), (240, 40, 12, "e"),
        (192, 64, 6, "m"), (64, 384, 6, "m"), (384, 64, 6, "m"), (384, 96, 6, "m"), (96, 576, 6, "m"), (576, 96, 6, "m"),
        (240, 80, 6, "e"), (80, 480, 6, "e"), (480, 80, 6, "e"), (480, 112, 6, "e"), (112, 672, 6, "e"), (672, 112, 6, "e"),
        (576, 160, 3, "m"), (160, 960, 3, "m"), (960, 160, 3, "m"), (960, 320, 3, "m"),
        (672, 192, 3, "e"), (192, 1152, 3, "e"), (1152, 192, 3, "e"), (1152, 320, 3, "e"), (320, 1280, 3, "m,e"),
    ]
    for (c, o, hw, net) in pointwise { conv("1x1 " + net, c, o, hw, k: 1) }
    // Squeeze-and-excitation 1x1 convolutions on pooled maps (EfficientNet-B0, with bias).
    for (c, sq) in [(32, 8), (144, 6), (672, 28), (1152, 48)] {
        conv("se reduce e", c, sq, 1, k: 1, bias: true)
        conv("se expand e", sq, c, 1, k: 1, bias: true)
    }
    // Batch norm on the distinct maps.
    for (c, hw) in [(32, 48), (16, 48), (96, 48), (96, 24), (144, 24), (24, 24), (144, 12), (240, 12), (40, 12), (192, 12),
                    (384, 6), (480, 6), (672, 6), (112, 6), (960, 3), (1152, 3), (320, 3), (1280, 3)] {
        cases.append(OpCase(op: "batch_norm", name: "bn m,e", input: [b, c, hw, hw]))
    }
    // Activations.
    for (c, hw) in [(96, 48), (144, 24), (672, 6)] {
        cases.append(OpCase(op: "relu6", name: "act m", input: [b, c, hw, hw]))
        cases.append(OpCase(op: "silu", name: "act e", input: [b, c, hw, hw]))
    }
    for c in [96, 672] { cases.append(OpCase(op: "sigmoid", name: "se gate e", input: [b, c, 1, 1])) }
    // Pooling: SE squeeze and the heads; max / avg pool for completeness.
    for (c, hw) in [(96, 48), (144, 24), (672, 6), (1280, 3)] {
        cases.append(OpCase(op: "adaptive_avg_pool2d", name: c == 1280 ? "head m,e" : "se squeeze e", input: [b, c, hw, hw], output: 1))
    }
    cases.append(OpCase(op: "max_pool2d", name: "pool", input: [b, 64, 48, 48], stride: 2, padding: 1, kernel: 3))
    cases.append(OpCase(op: "avg_pool2d", name: "pool", input: [b, 64, 48, 48], stride: 2, padding: 1, kernel: 3))
    // Classifier, dropout, stochastic depth.
    cases.append(OpCase(op: "linear", name: "classifier m,e", input: [b, 1280], weight: [10, 1280], bias: true))
    cases.append(OpCase(op: "dropout", name: "classifier m,e", input: [b, 1280], p: 0.2))
    cases.append(OpCase(op: "stochastic_depth", name: "residual e", input: [b, 24, 24, 24], p: 0.2))
    cases.append(OpCase(op: "stochastic_depth", name: "residual e", input: [b, 112, 6, 6], p: 0.2))
    return cases
}

/// Which clock times the ops: the process's CPU time is immune to other processes sharing the
/// cores (exact for one thread), wall time is what a multi-threaded run needs.
nonisolated(unsafe) var benchClock = CLOCK_MONOTONIC

/// Seconds of the benchmark clock.
@inline(__always) func now() -> Double {
    var ts = timespec()
    clock_gettime(benchClock, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Minimum and median milliseconds of `body` (after two warm-up runs), repeated until `budget`
/// seconds or `maxReps`. The minimum is the robust figure on a shared machine.
func timeOp(budget: Double, minReps: Int = 5, maxReps: Int = 200, _ body: () throws -> Void) rethrows -> (min: Double, median: Double) {
    try body(); try body()
    var times: [Double] = []
    let start = now()
    while times.count < minReps || (times.count < maxReps && now() - start < budget) {
        let t0 = now()
        try body()
        times.append((now() - t0) * 1000)
    }
    times.sort()
    return (times[0], times[times.count / 2])
}

/// Builds the op's inputs (requiring grad) and returns a closure running its forward.
func makeOp(_ c: OpCase) throws -> (inputs: [Tensor], forward: () throws -> Tensor) {
    let gen = Generator(seed: 1)
    let x = try Tensor.randn(c.input, generator: gen).requiringGrad()
    switch c.op {
    case "conv2d":
        let w = try Tensor.randn(c.weight!, generator: gen).mul(0.1).requiringGrad()
        let bias = c.bias == true ? try Tensor.randn([c.weight![0]], generator: gen).requiringGrad() : nil
        let ins = [x, w] + (bias.map { [$0] } ?? [])
        return (ins, { try conv2d(x, w, bias: bias, stride: [c.stride ?? 1], padding: [c.padding ?? 0], groups: c.groups ?? 1) })
    case "batch_norm":
        let ch = c.input[1]
        let w = try Tensor.ones([ch]).requiringGrad(), b = try Tensor.zeros([ch]).requiringGrad()
        let rm = try Tensor.zeros([ch]), rv = try Tensor.ones([ch])
        return ([x, w, b], { try batchNorm2d(x, runningMean: rm, runningVar: rv, weight: w, bias: b, training: true) })
    case "relu6": return ([x], { try x.relu6() })
    case "silu": return ([x], { try x.silu() })
    case "sigmoid": return ([x], { try x.sigmoid() })
    case "max_pool2d": return ([x], { try maxPool2d(x, kernel: [c.kernel!], stride: [c.stride!], padding: [c.padding!]) })
    case "avg_pool2d": return ([x], { try avgPool2d(x, kernel: [c.kernel!], stride: [c.stride!], padding: [c.padding!]) })
    case "adaptive_avg_pool2d": return ([x], { try adaptiveAvgPool2d(x, outputSize: [c.output!]) })
    case "linear":
        let w = try Tensor.randn(c.weight!, generator: gen).mul(0.05).requiringGrad()
        let b = try Tensor.zeros([c.weight![0]]).requiringGrad()
        return ([x, w, b], { try linear(x, w, bias: b) })
    case "dropout":
        let g = Generator(seed: 3)
        return ([x], { try dropout(x, p: c.p!, training: true, generator: g) })
    case "stochastic_depth":
        let g = Generator(seed: 3)
        return ([x], { try stochasticDepth(x, p: c.p!, mode: .row, training: true, generator: g) })
    default:
        throw ValidationError("unknown op \(c.op)")
    }
}

/// `sskd bench ops`: forward and backward time of every CNN kernel at the model shapes.
struct BenchOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "Time each CNN op (forward, backward) at the MobileNetV2 / EfficientNet-B0 shapes (96x96, batch 32).",
        discussion: "scripts/bench_ops.sh runs this and scripts/reference/bench_ops.py (PyTorch) and prints the ratios."
    )

    @Option(help: "Worker threads for our kernels (OpenBLAS runs single-threaded).")
    var threads: Int = 1
    @Option(help: "Batch size.")
    var batch: Int = 32
    @Option(help: "Seconds spent timing each op direction.")
    var budget: Double = 0.3
    @Option(help: "Only ops whose op name or label contains this text.")
    var filter: String?
    @Option(help: "Clock: cpu (process CPU time, default with 1 thread) or wall (default otherwise).")
    var clock: String?
    @Flag(help: "Print the results as JSON.")
    var json = false
    @Flag(help: "Print the case list as JSON (input for bench_ops.py) and exit.")
    var spec = false
    @Flag(help: """
        Serve timings: read case indices (into the filtered list), one per line on stdin, and \
        answer each with one JSON result line, until end of input. scripts/bench_ops.sh runs this \
        beside PyTorch's server so both sides time an op within seconds of each other.
        """)
    var serve = false

    struct Result: Codable {
        var op: String, name: String, shape: String
        var forward_ms: Double, backward_ms: Double                 // minimum over the repetitions
        var forward_median_ms: Double, backward_median_ms: Double
    }

    func measure(_ c: OpCase) throws -> Result {
        let (_, forward) = try makeOp(c)
        let fwd = try timeOp(budget: budget) { _ = try forward() }
        let y = try forward()
        let dy = try Tensor.randn(y.shape, generator: Generator(seed: 2))
        // The op's own backward (like PyTorch's y.grad_fn(dy)): no accumulation into .grad.
        guard let node = y.gradFn else { throw ValidationError("\(c.op) recorded no backward") }
        let bwd = try timeOp(budget: budget) { _ = try node.apply(dy) }
        return Result(op: c.op, name: c.name, shape: c.shapeLabel, forward_ms: fwd.min, backward_ms: bwd.min,
                      forward_median_ms: fwd.median, backward_median_ms: bwd.median)
    }

    func run() throws {
        var cases = benchCases(batch: batch)
        if let filter { cases = cases.filter { $0.op.contains(filter) || $0.name.contains(filter) || $0.shapeLabel.contains(filter) } }
        let enc = JSONEncoder()
        if spec {
            print(String(decoding: try enc.encode(cases), as: UTF8.self))
            return
        }
        try Runtime.setThreads(threads)
        // The malloc settings of a training run (DataLoader.init applies them): freed activation
        // buffers stay in the heap instead of being unmapped and faulted back in on every call.
        Allocator.tuneForImages()
        switch clock ?? (threads == 1 ? "cpu" : "wall") {
        case "cpu": benchClock = CLOCK_PROCESS_CPUTIME_ID
        case "wall": benchClock = CLOCK_MONOTONIC
        default: throw ValidationError("--clock must be cpu or wall")
        }
        if serve {
            // A bad request gets an error line naming it; the server keeps serving.
            while let line = readLine() {
                let text = line.trimmingCharacters(in: .whitespaces)
                if text.isEmpty { continue }
                let reply: String
                if let i = Int(text), cases.indices.contains(i) {
                    do { reply = String(decoding: try enc.encode(try measure(cases[i])), as: UTF8.self) } catch {
                        reply = String(decoding: try enc.encode(["error": "case \(i) (\(cases[i].op) \(cases[i].shapeLabel)): \(error)"]), as: UTF8.self)
                    }
                } else {
                    reply = String(decoding: try enc.encode(["error": "expected a case index in 0..<\(cases.count), got '\(text)'"]), as: UTF8.self)
                }
                print(reply)
                fflush(stdout)
            }
            return
        }
        var results: [Result] = []
        if !json { print("op                   shape                               forward ms  backward ms   (min of reps)") }
        for c in cases {
            let r = try measure(c)
            results.append(r)
            if !json {
                print(c.op.padding(toLength: 20, withPad: " ", startingAt: 0), c.shapeLabel.padding(toLength: 35, withPad: " ", startingAt: 0),
                      String(format: "%10.3f  %11.3f", r.forward_ms, r.backward_ms))
            }
        }
        if json { print(String(decoding: try enc.encode(results), as: UTF8.self)) }
    }
}
