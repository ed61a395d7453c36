// An opt-in profiler: where a training or inference step spends its time, by op family,
// forward and backward.
//
// Forward: every differentiable op calls `record(...)` right after computing its output, so the
// wall time since the previous op's `record` (or since `Profiler.mark()`) is charged to this op.
// That gap holds the op's own work plus the little glue before it (argument checks, module
// dispatch). It is charged whether or not grad mode is on, so eval forwards are profiled too.
// Backward: `Tensor.backward` times each node's closure directly, and the gradient additions
// where a tensor feeds several ops ("autograd accumulate").
// Work that records no op (an optimizer step, zeroing gradients) is timed by the caller through
// `Profiler.measure(_:_:)`.
//
// Cost when off: one load and branch per `record` and per backward node.

#if canImport(Glibc)
import Glibc
#endif

/// Per-op-family accumulated forward and backward wall time (milliseconds).
public enum Profiler {
    /// Switches profiling on or off (default: on when the environment has `SSKD_PROFILE=1`).
    nonisolated(unsafe) public static var enabled: Bool = {
        guard let v = getenv("SSKD_PROFILE") else { return false }
        return String(cString: v) == "1"
    }()

    /// One family's totals.
    public struct Entry: Sendable {
        public var forwardMs: Double = 0
        public var backwardMs: Double = 0
        /// Regions timed with `measure(_:phase: .step)`: neither forward nor backward (optimizer step, zero_grad).
        public var stepMs: Double = 0
        /// Number of forward ops / backward nodes charged.
        public var forwardCalls: Int = 0
        public var backwardCalls: Int = 0
    }

    nonisolated(unsafe) private static var table: [String: Entry] = [:]
    nonisolated(unsafe) private static var lastMark: Double = 0
    /// Depth of `measure` / backward scopes: ops recorded inside them are not charged again.
    nonisolated(unsafe) private static var suspended = 0

    /// The totals so far, by family.
    public static var entries: [String: Entry] { table }

    /// Clears the totals.
    public static func reset() { table = [:]; lastMark = clock() }

    /// Starts the forward clock: the next recorded op is charged the time from here.
    public static func mark() { lastMark = clock() }

    /// The column a time goes to.
    public enum Phase: Sendable { case forward, backward, step }

    /// Runs `body` and charges its wall time to `family` in `phase` (default: `.step`, work
    /// outside forward and backward, like an optimizer step). Ops recorded inside are not
    /// charged separately. Without profiling it just runs `body`.
    @discardableResult
    public static func measure<T>(_ family: String, phase: Phase = .step, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let t0 = clock()
        suspended += 1
        defer {
            suspended -= 1
            let t1 = clock()
            charge(family, phase, ms: (t1 - t0) * 1000)
            lastMark = t1
        }
        return try body()
    }

    // MARK: Hooks (called by the tensor core)

    /// `record(...)` was called for op `name`: charge the time since the last mark.
    static func forwardOp(_ name: String, _ inputs: [Tensor], _ out: Tensor) {
        guard suspended == 0 else { return }
        let t = clock()
        charge(family(name, inputs.map { $0.shape }, out.shape), .forward, ms: (t - lastMark) * 1000)
        lastMark = t
    }

    /// Starts a backward pass: ops run by backward closures are not forward ops.
    static func beginBackward() { suspended += 1 }
    static func endBackward() { suspended -= 1; lastMark = clock() }

    /// Charges `ms` of a backward node (`name`, its inputs' shapes and its output's shape).
    static func backwardNode(_ node: Node, outShape: [Int], ms: Double) {
        charge(family(node.name, node.inputs.map { $0.shape }, outShape), .backward, ms: ms)
    }

    static func charge(_ family: String, _ phase: Phase, ms: Double) {
        var e = table[family] ?? Entry()
        switch phase {
        case .forward: e.forwardMs += ms; e.forwardCalls += 1
        case .backward: e.backwardMs += ms; e.backwardCalls += 1
        case .step: e.stepMs += ms
        }
        table[family] = e
    }

    /// Seconds of a monotonic clock.
    @inline(__always) static func clock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// The family of op `name` given its input and output shapes (NCHW for convolutions).
    /// Squeeze-and-excitation ops are recognised by acting on `[N, C, 1, 1]` maps.
    public static func family(_ name: String, _ inputs: [[Int]], _ out: [Int]) -> String {
        let pooledMap = out.count == 4 && out[2] == 1 && out[3] == 1
        switch name {
        case "conv2d":
            guard inputs.count >= 2, inputs[0].count == 4, inputs[1].count == 4 else { return "conv (other)" }
            let x = inputs[0], w = inputs[1]
            if w[1] == 1 && x[1] == w[0] && w[0] > 1 { return "depthwise conv" }
            if x[2] == 1 && x[3] == 1 { return "SE" }
            if w[2] == 1 && w[3] == 1 { return "conv 1x1" }
            return "conv dense (stem)"
        case "batch_norm": return "batch norm"
        case "batch_norm+relu", "batch_norm+relu6", "batch_norm+silu": return "batch norm + activation"
        case "relu", "relu6", "silu", "sigmoid", "hardswish", "hardsigmoid", "tanh":
            return pooledMap ? "SE" : "activations"
        case "mul":
            // The SE gate: [N, C, H, W] * [N, C, 1, 1].
            if inputs.count == 2 && inputs[0] != inputs[1] && inputs.contains(where: { $0.count == 4 && $0[2] == 1 && $0[3] == 1 }) { return "SE" }
            return out.count == 4 ? "elementwise (other)" : "loss"
        case "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d":
            return pooledMap && inputs.first.map({ $0.count == 4 && $0[1] != 1280 }) == true ? "SE" : "pooling"
        case "linear": return "linear"
        case "dropout", "stochastic_depth": return "dropout / stochastic depth"
        case "add":
            return out.count == 4 ? "residual add" : "loss"
        case "cross_entropy", "kl_div", "log_softmax", "softmax", "div", "sub", "mse_loss", "nll_loss":
            return out.count <= 2 ? "loss" : "elementwise (other)"
        case "reshape", "view", "flatten", "permute", "transpose", "squeeze", "unsqueeze", "clone", "contiguous", "expand",
             "broadcast_to", "cat", "stack":
            return "data movement"
        default:
            return out.count <= 2 ? "loss" : "other"
        }
    }

    /// A Markdown table of the totals, divided by `iterations` (ms per iteration), families in
    /// `order` first (then the rest by total time), with each column's share. "step" is time
    /// outside forward and backward (`measure(_:phase: .step)`).
    public static func report(iterations: Int = 1, order: [String] = []) -> String {
        let n = Double(max(iterations, 1))
        func total(_ e: Entry) -> Double { e.forwardMs + e.backwardMs + e.stepMs }
        let fTot = table.values.reduce(0) { $0 + $1.forwardMs }, bTot = table.values.reduce(0) { $0 + $1.backwardMs }
        let all = table.values.reduce(0) { $0 + total($1) }
        var names = order.filter { table[$0] != nil }
        names += table.keys.filter { !names.contains($0) }.sorted { total(table[$0]!) > total(table[$1]!) }
        func pct(_ a: Double, _ t: Double) -> String { t > 0 ? fmt1(100 * a / t) : "-" }
        var s = "| family | fwd ms | fwd % | bwd ms | bwd % | step ms | total ms | total % |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for k in names {
            let e = table[k]!
            s += "| \(k) | \(fmt1(e.forwardMs / n)) | \(pct(e.forwardMs, fTot)) | \(fmt1(e.backwardMs / n)) | \(pct(e.backwardMs, bTot)) | "
            s += "\(fmt1(e.stepMs / n)) | \(fmt1(total(e) / n)) | \(pct(total(e), all)) |\n"
        }
        let sTot = all - fTot - bTot
        s += "| **total** | \(fmt1(fTot / n)) | 100 | \(fmt1(bTot / n)) | 100 | \(fmt1(sTot / n)) | \(fmt1(all / n)) | 100 |\n"
        return s
    }

    private static func fmt1(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? "\(Int(r)).0" : "\(r)"
    }
}
