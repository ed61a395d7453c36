// `sskd bench train`: images/s and peak memory of the SS-KD train, KD and eval steps, the sskd
// side of scripts/reference/bench_train.py (same cases, flags and JSON fields).
//
// At 3 x size x size input (96), 10 classes, random init, inputs fixed in memory:
//   student_train    EfficientNet-B0 train mode: forward, CE, zero_grad, backward, Adam(1e-3) step
//   teacher_train    MobileNetV2, same with Adam(5e-4)
//   kd_step          MobileNetV2 eval forward without a graph + EfficientNet-B0 train step with
//                    0.5 * KL(softmax(t/3) || log_softmax(s/3)) * 9 (batchmean) + 0.5 * CE
//   student_eval32 / student_eval256 / teacher_eval32 / teacher_eval256
//                    eval forward under withNoGrad at batch 32 / 256
// Dropout and stochastic depth are at torchvision defaults and active in the train cases.
//
// `--case NAME` runs one case in this process and prints one JSON line; without it the driver
// runs each case in a fresh child process (so each case's peak RSS, VmHWM, is its own).
// `--profile` adds a per-op-family table (forward / backward ms per iteration) from extra
// profiled iterations after the timed ones (the timed ones run without the profiler).

import ArgumentParser
import Foundation
import SSKDData
import SSKDNN
import SSKDOptim
import SSKDTensor

/// The cases, in the reference script's order: (name, model, kind, fixed batch or nil for --batch).
let trainBenchCases: [(name: String, model: String, kind: String, batch: Int?)] = [
    ("student_train", "student", "train", nil),
    ("teacher_train", "teacher", "train", nil),
    ("kd_step", "student", "kd", nil),
    ("student_eval32", "student", "eval", 32),
    ("student_eval256", "student", "eval", 256),
    ("teacher_eval32", "teacher", "eval", 32),
    ("teacher_eval256", "teacher", "eval", 256),
]

#if DEBUG
let buildConfiguration = "debug"
#else
let buildConfiguration = "release"
#endif

let kdAlpha: Float = 0.5
let kdTemperature: Float = 3

/// The families in the order the profile table lists them.
let profileFamilies = ["conv dense (stem)", "conv 1x1", "depthwise conv", "batch norm", "batch norm + activation", "activations", "SE", "pooling", "linear",
                       "dropout / stochastic depth", "residual add", "loss", "optimizer step", "zero_grad",
                       "autograd accumulate", "data movement", "elementwise (other)", "other"]

/// A value of `/proc/self/status` in MiB (`VmHWM` = peak resident set, `VmRSS` = current).
func procStatusMiB(_ key: String) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
        let kib = line.dropFirst(key.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Double($0) } ?? 0
        return kib / 1024
    }
    return 0
}

/// KD blend of `PAPER.md`: alpha * KL(softmax(t/T) || log_softmax(s/T)) * T^2 + (1 - alpha) * CE.
func kdBlendLoss(student s: Tensor, teacher t: Tensor, labels: Tensor, alpha: Float, temperature T: Float) throws -> Tensor {
    let ce = try s.crossEntropy(labels)
    let kd = try s.div(T).logSoftmax(1).klDiv(t.div(T).softmax(1), reduction: .batchmean).mul(T * T)
    return try kd.mul(alpha) + ce.mul(1 - alpha)
}

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Images/s and peak memory of the train, KD and eval steps (compare scripts/reference/bench_train.py).",
        discussion: "scripts/bench_train.sh runs both sides per case at 1 and 2 threads and prints the ratios."
    )

    @Option(help: "Comma list of cases to run (driver mode).")
    var cases: String = trainBenchCases.map { $0.name }.joined(separator: ",")
    @Option(help: "Run exactly this case in this process and print one JSON line.")
    var `case`: String?
    @Option(help: "Worker threads for our kernels (OpenBLAS runs single-threaded).")
    var threads: Int = 1
    @Option(help: "Untimed iterations first.")
    var warmup: Int = 3
    @Option(help: "Timed iterations.")
    var iters: Int = 10
    @Option(help: "Batch of the train and KD steps.")
    var batch: Int = 32
    @Option(help: "Input side (3 x size x size).")
    var size: Int = 96
    @Option(help: "Seed of the weights, inputs and labels.")
    var seed: UInt64 = 0
    @Flag(help: "Print JSON (one line per case).")
    var json = false
    @Flag(help: "Also profile by op family (extra iterations after the timed ones).")
    var profile = false
    @Flag(help: "Run forwards layer by layer: in eval on the whole batch (no conv + batch norm folding, no in-place activations, no batch split across threads), in training without batch norm + activation fusion.")
    var noFusion = false
    @Flag(help: "List the cases and exit.")
    var list = false

    func validate() throws {
        guard warmup >= 0, iters > 0, batch > 0, size >= 32 else {
            throw ValidationError("--warmup must be >= 0; --iters and --batch positive; --size at least 32")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be positive") }
        let names = Set(trainBenchCases.map { $0.name })
        if let c = `case`, !names.contains(c) { throw ValidationError("--case: unknown '\(c)'; choose from \(names.sorted().joined(separator: ", "))") }
        for c in cases.split(separator: ",") where !names.contains(String(c)) {
            throw ValidationError("--cases: unknown '\(c)'; choose from \(names.sorted().joined(separator: ", "))")
        }
    }

    func run() throws {
        if list {
            for c in trainBenchCases { print("\(c.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(c.model.padding(toLength: 8, withPad: " ", startingAt: 0)) \(c.kind.padding(toLength: 5, withPad: " ", startingAt: 0)) batch \(c.batch ?? batch)") }
            return
        }
        if let c = `case` {
            let r = try runCase(c)
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: r, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print(String(format: "%@  %d thread(s)  batch %d  %.1f images/s  %.1f ms/iter (median)  peak RSS %.0f MiB",
                             c, threads, r["batch"] as! Int, r["images_per_s"] as! Double, r["ms_per_iter_median"] as! Double,
                             r["peak_rss_mb"] as! Double))
                if let p = r["profile_table"] as? String { print(p) }
            }
            return
        }
        try drive()
    }

    /// One child process per case.
    func drive() throws {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).path
        for name in cases.split(separator: ",").map(String.init) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe.hasPrefix("/") ? exe : FileManager.default.currentDirectoryPath + "/" + exe)
            var args = ["bench", "train", "--case", name, "--threads", "\(threads)", "--warmup", "\(warmup)", "--iters", "\(iters)",
                        "--batch", "\(batch)", "--size", "\(size)", "--seed", "\(seed)"]
            if json { args.append("--json") }
            if profile { args.append("--profile") }
            if noFusion { args.append("--no-fusion") }
            p.arguments = args
            var env = ProcessInfo.processInfo.environment
            env["SSKD_THREADS"] = "\(threads)"
            p.environment = env
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw ValidationError("case \(name) failed (exit \(p.terminationStatus))") }
        }
    }

    /// Builds the case's models and data, warms up, times, and returns the JSON fields.
    func runCase(_ name: String) throws -> [String: Any] {
        try Runtime.setThreads(threads)
        InferenceFusion.enabled = !noFusion
        BatchNorm2d.fusesActivation = !noFusion
        Allocator.tuneForImages()   // keep freed activations in the heap (see SSKDData/Allocator.swift)
        let rssStart = procStatusMiB("VmRSS")
        let spec = trainBenchCases.first { $0.name == name }!
        let n = spec.batch ?? batch
        let gen = Generator(seed: seed)
        let model = try Models.make(spec.model == "student" ? "efficientnet_b0" : "mobilenet_v2", classes: 10, generator: gen)
        let x = try Tensor.rand([n, 3, size, size], generator: gen)
        let y = try Tensor((0..<n).map { _ in Float(gen.nextInt(10)) }, shape: [n])

        let step: () throws -> Void
        if spec.kind == "eval" {
            model.eval()
            step = { _ = try withNoGrad { try model(x) } }
        } else {
            model.train()
            let opt = try Adam(model.parameters(), lr: spec.model == "student" ? 1e-3 : 5e-4)
            let teacher: Module? = spec.kind == "kd" ? try Models.make("mobilenet_v2", classes: 10, generator: gen) : nil
            teacher?.eval()
            step = {
                Profiler.mark()
                let logits = try model(x)
                var loss: Tensor
                if let teacher {
                    let t = try withNoGrad { try teacher(x) }
                    loss = try kdBlendLoss(student: logits, teacher: t, labels: y, alpha: kdAlpha, temperature: kdTemperature)
                } else {
                    loss = try logits.crossEntropy(y)
                }
                Profiler.measure("zero_grad") { opt.zeroGrad() }
                try loss.backward()
                try Profiler.measure("optimizer step") { try opt.step() }
            }
        }

        for _ in 0..<warmup { try step() }
        var times: [Double] = []
        for _ in 0..<iters {
            let t0 = now()
            try step()
            times.append(now() - t0)
        }
        let total = times.reduce(0, +)
        var r: [String: Any] = [
            "case": name, "model": spec.model, "kind": spec.kind, "threads": threads, "batch": n, "size": size,
            "warmup": warmup, "iters": iters,
            "images_per_s": Double(n * iters) / total,
            "ms_per_iter_mean": 1000 * total / Double(iters),
            "ms_per_iter_median": 1000 * times.sorted()[times.count / 2],
            "ms_per_iter_min": 1000 * times.min()!,
            "peak_rss_mb": procStatusMiB("VmHWM"),
            "rss_after_import_mb": rssStart,
            "tensor_peak_mb": Double(MemoryStats.peakBytes) / 1048576,
            "build": buildConfiguration,
        ]
        if profile {
            Profiler.enabled = true
            Profiler.reset()
            for _ in 0..<iters {
                Profiler.mark()
                try step()
            }
            Profiler.enabled = false
            r["profile_table"] = Profiler.report(iterations: iters, order: profileFamilies)
            var fams: [String: [String: Double]] = [:]
            for (k, e) in Profiler.entries {
                fams[k] = ["forward_ms": e.forwardMs / Double(iters), "backward_ms": e.backwardMs / Double(iters),
                           "step_ms": e.stepMs / Double(iters)]
            }
            r["profile"] = fams
        }
        return r
    }
}
