#if canImport(Glibc)
import Glibc
#endif

/// An n-dimensional Float32 tensor with contiguous row-major storage and reverse-mode autograd.
///
/// Tensors are reference types like PyTorch's: `reshape` returns a view sharing storage; every
/// other op returns a new tensor. Storage is always contiguous, so `contiguous()` is free and
/// kernels are plain loops over buffers. Shapes use PyTorch's conventions: dims are 0-based and a
/// negative dim counts from the end.
public final class Tensor {
    /// The buffer; shared by views.
    public let storage: Storage
    /// Sizes of each dimension (row-major).
    public let shape: [Int]
    /// Number of elements (product of `shape`).
    public let count: Int

    /// Whether gradients flow to (and, for a leaf, accumulate in) this tensor.
    public var requiresGrad: Bool
    /// Accumulated gradient of a leaf after `backward()`.
    public var grad: Tensor?
    /// The op that produced this tensor, when it was recorded for autograd.
    public internal(set) var gradFn: Node?

    /// Raw element pointer (row-major). Kernels read and write through it.
    @inline(__always) public var data: UnsafeMutablePointer<Float> { storage.data }

    /// A view of `storage` (whose count the caller has checked against `shape`).
    init(shape: [Int], storage: Storage, requiresGrad: Bool = false) {
        self.shape = shape
        self.count = shape.reduce(1, &*)
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    /// A new tensor of `shape` with its own storage (zeroed unless asked not to). The shape is
    /// checked (`MemoryLimit.checkedCount`) and the buffer allocated through `MemoryLimit`, so a
    /// shape computed from bad arguments throws a `TensorError` naming `op`.
    init(_ shape: [Int], zeroed: Bool = true, op: String = "tensor") throws {
        let count = try MemoryLimit.checkedCount(shape, op: op)
        self.shape = shape
        self.count = count
        self.storage = try Storage(count: count, zeroed: zeroed, op: op)
        self.requiresGrad = false
    }

    // MARK: Shape queries

    /// Number of dimensions.
    public var dim: Int { shape.count }
    public var isScalar: Bool { count == 1 }

    /// Size of dimension `d` (negative counts from the end).
    public func size(_ d: Int) throws -> Int {
        guard dim > 0 else { throw TensorError("size", "dimension specified as \(d) but tensor has no dimensions") }
        return shape[try normalizeAxis(d, dim, op: "size")]
    }

    /// Row-major strides (in elements).
    public var strides: [Int] { contiguousStrides(shape) }

    // MARK: Values

    /// The single value of a one-element tensor.
    public func item() throws -> Float {
        guard count == 1 else { throw TensorError("item", "only one-element tensors can be converted to a number, got shape \(fmt(shape))") }
        return data[0]
    }

    /// The elements in row-major order.
    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// Value at a multi-index (0-based).
    public func value(at index: [Int]) throws -> Float {
        guard index.count == dim else { throw TensorError("value", "index \(index) has \(index.count) entries for shape \(fmt(shape))") }
        var off = 0
        for (i, (ix, n)) in zip(index, shape).enumerated() {
            let j = ix < 0 ? ix + n : ix
            guard j >= 0 && j < n else { throw TensorError("value", "index \(ix) out of range for dim \(i) of size \(n)") }
            off = off * n + j
        }
        return data[off]
    }

    // MARK: Autograd

    /// A tensor sharing storage with this one, cut from the graph.
    public func detach() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// A copy with its own storage (recorded for autograd like PyTorch's clone).
    public func clone() throws -> Tensor {
        let out = try Tensor(shape, zeroed: false)
        out.data.update(from: data, count: count)
        return record(out, "clone", [self]) { g in [g] }
    }

    /// Sets `requiresGrad` and returns self, for chaining (`Tensor.randn([3]).requiringGrad()`).
    @discardableResult
    public func requiringGrad(_ flag: Bool = true) -> Tensor { requiresGrad = flag; return self }

    /// Whether this tensor is a leaf of the graph (created by the user, not by a recorded op).
    public var isLeaf: Bool { gradFn == nil }

    /// Clears the accumulated gradient.
    public func zeroGrad() { grad = nil }
}

@inline(__always) func contiguousStrides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
    return s
}

/// Normalises a possibly negative axis for a tensor of rank `rank`.
@inline(__always) func normalizeAxis(_ axis: Int, _ rank: Int, op: String) throws -> Int {
    let r = max(rank, 1)
    let a = axis < 0 ? axis + r : axis
    guard a >= 0 && a < r else { throw TensorError(op, "dim \(axis) out of range for a tensor of \(rank) dims (expected in \(-r)...\(r - 1))") }
    return a
}

/// Checks that a tensor of `shape` can exist and be allocated (see `MemoryLimit`).
func validateShape(_ shape: [Int], op: String) throws {
    let count = try MemoryLimit.checkedCount(shape, op: op)
    try MemoryLimit.check(count: count, elementSize: MemoryLayout<Float>.stride, op: op)
}

// MARK: - Creation

extension Tensor {
    /// Zeros of the given shape (`[]` is a scalar).
    // Each creation function names itself in the errors of `Tensor.init(_:zeroed:op:)`, which
    // checks the shape and the memory once.

    public static func zeros(_ shape: [Int]) throws -> Tensor { try Tensor(shape, op: "zeros") }

    public static func ones(_ shape: [Int]) throws -> Tensor { try filled(shape, 1, op: "ones") }

    /// An uninitialised tensor (like `torch.empty`), for code that writes every element next.
    public static func empty(_ shape: [Int]) throws -> Tensor { try Tensor(shape, zeroed: false, op: "empty") }

    public static func full(_ shape: [Int], _ value: Float) throws -> Tensor { try filled(shape, value, op: "full") }

    private static func filled(_ shape: [Int], _ value: Float, op: String) throws -> Tensor {
        let t = try Tensor(shape, zeroed: false, op: op)
        t.data.update(repeating: value, count: t.count)
        return t
    }

    /// A zero-dimensional tensor holding `value`.
    public static func scalar(_ value: Float) throws -> Tensor {
        let t = try Tensor([], zeroed: false)
        t.data[0] = value
        return t
    }

    /// `start, start+step, ...` up to but excluding `end`, like `torch.arange`.
    public static func arange(_ start: Float, _ end: Float, step: Float = 1) throws -> Tensor {
        guard step != 0, step.isFinite, start.isFinite, end.isFinite else { throw TensorError("arange", "step must be a non-zero finite number and bounds finite (start \(start), end \(end), step \(step))") }
        guard (end - start) / step >= 0 else { throw TensorError("arange", "upper bound and step sign are inconsistent (start \(start), end \(end), step \(step))") }
        let steps = ((Double(end) - Double(start)) / Double(step)).rounded(.up)
        guard steps <= Double(1 << 40) else { throw TensorError("arange", "too many elements (start \(start), end \(end), step \(step))") }
        let n = Int(steps)
        let t = try zeros([n])
        for i in 0..<n { t.data[i] = Float(Double(start) + Double(i) * Double(step)) }
        return t
    }

    public static func arange(_ end: Float) throws -> Tensor { try arange(0, end) }

    /// A tensor from row-major values and a shape (default: 1-D).
    public convenience init(_ values: [Float], shape: [Int]? = nil) throws {
        let shape = shape ?? [values.count]
        let n = try MemoryLimit.checkedCount(shape, op: "tensor")
        guard n == values.count else { throw TensorError("tensor", "\(values.count) values do not fill shape \(fmt(shape)) (\(n) elements)") }
        try self.init(shape, zeroed: false)
        if n > 0 { values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: n) } }
    }

    /// A 2-D tensor from nested rows.
    public convenience init(rows: [[Float]]) throws {
        let c = rows.first?.count ?? 0
        guard rows.allSatisfy({ $0.count == c }) else { throw TensorError("tensor", "rows have different lengths: \(rows.map { $0.count })") }
        try self.init(rows.flatMap { $0 }, shape: [rows.count, c])
    }

    /// Uniform in [0, 1).
    public static func rand(_ shape: [Int], generator: Generator = .default) throws -> Tensor {
        try uniform(shape, low: 0, high: 1, generator: generator, op: "rand")
    }

    /// Standard normal.
    public static func randn(_ shape: [Int], generator: Generator = .default) throws -> Tensor {
        try normal(shape, mean: 0, std: 1, generator: generator, op: "randn")
    }

    /// Uniform in [low, high).
    public static func uniform(_ shape: [Int], low: Float, high: Float, generator: Generator = .default) throws -> Tensor {
        try uniform(shape, low: low, high: high, generator: generator, op: "uniform")
    }

    /// Normal with the given mean and standard deviation.
    public static func normal(_ shape: [Int], mean: Float, std: Float, generator: Generator = .default) throws -> Tensor {
        try normal(shape, mean: mean, std: std, generator: generator, op: "normal")
    }

    private static func uniform(_ shape: [Int], low: Float, high: Float, generator: Generator, op: String) throws -> Tensor {
        guard low.isFinite, high.isFinite, low <= high else { throw TensorError(op, "need finite low <= high, got \(low), \(high)") }
        let t = try Tensor(shape, zeroed: false, op: op)
        let span = high - low
        for i in 0..<t.count { t.data[i] = low + span * generator.nextFloat() }
        return t
    }

    private static func normal(_ shape: [Int], mean: Float, std: Float, generator: Generator, op: String) throws -> Tensor {
        guard mean.isFinite, std.isFinite, std >= 0 else { throw TensorError(op, "need finite mean and std >= 0, got mean \(mean), std \(std)") }
        let t = try Tensor(shape, zeroed: false, op: op)
        for i in 0..<t.count { t.data[i] = mean + std * generator.nextNormal() }
        return t
    }

    /// The `n x n` identity matrix (`m` columns when given), like `torch.eye`.
    public static func eye(_ n: Int, _ m: Int? = nil) throws -> Tensor {
        let cols = m ?? n
        let t = try Tensor([n, cols], op: "eye")
        for i in 0..<Swift.min(n, cols) { t.data[i * cols + i] = 1 }
        return t
    }

    /// Zeros/ones shaped like another tensor.
    public static func zeros(like t: Tensor) throws -> Tensor { try Tensor(t.shape) }
    public static func ones(like t: Tensor) throws -> Tensor { let o = try Tensor(t.shape, zeroed: false); o.data.update(repeating: 1, count: o.count); return o }

    /// Copies values from `src` (same shape) into this tensor's storage, outside autograd.
    public func copy_(from src: Tensor) throws {
        guard src.shape == shape else { throw TensorError("copy_", "shape \(fmt(src.shape)) does not match \(fmt(shape))") }
        data.update(from: src.data, count: count)
    }

    /// Fills this tensor's storage with `value`, outside autograd.
    public func fill_(_ value: Float) { data.update(repeating: value, count: count) }
}
