// Reductions over any set of axes, with keepdim. Axes may be negative; an empty axis list
// (the default) reduces over all dims. Gradients are written with broadcasting.

/// Validated, sorted, de-duplicated axes; all axes when `axes` is nil or empty.
/// A 0-dim tensor accepts dim 0 / -1 like PyTorch's, and has no axes to reduce.
func normalizeAxes(_ axes: [Int]?, _ rank: Int, op: String) throws -> [Int] {
    guard let axes, !axes.isEmpty else { return Array(0..<rank) }
    var out = Set<Int>()
    for a in axes {
        let n = try normalizeAxis(a, rank, op: op)
        guard out.insert(n).inserted else { throw TensorError(op, "dim \(a) appears more than once in \(axes)") }
    }
    return rank == 0 ? [] : out.sorted()
}

/// Shape after reducing `axes` (kept as 1 when keepdim).
func reducedShape(_ shape: [Int], _ axes: [Int], keepdim: Bool) -> [Int] {
    var out: [Int] = []
    for (i, d) in shape.enumerated() {
        if axes.contains(i) { if keepdim { out.append(1) } } else { out.append(d) }
    }
    return out
}

/// Reduces `n` contiguous values with eight interleaved accumulators (which also breaks the
/// add latency chain), combined pairwise at the end.
@inline(__always)
func reduceSpan(_ p: UnsafePointer<Float>, _ n: Int, _ identity: Float, _ combine: (Float, Float) -> Float) -> Float {
    var a0 = identity, a1 = identity, a2 = identity, a3 = identity
    var a4 = identity, a5 = identity, a6 = identity, a7 = identity
    var i = 0
    while i + 8 <= n {
        a0 = combine(a0, p[i]); a1 = combine(a1, p[i + 1]); a2 = combine(a2, p[i + 2]); a3 = combine(a3, p[i + 3])
        a4 = combine(a4, p[i + 4]); a5 = combine(a5, p[i + 5]); a6 = combine(a6, p[i + 6]); a7 = combine(a7, p[i + 7])
        i += 8
    }
    while i < n { a0 = combine(a0, p[i]); i += 1 }
    return combine(combine(combine(a0, a1), combine(a2, a3)), combine(combine(a4, a5), combine(a6, a7)))
}

/// Pairwise (tree) combination of `n >= 1` partial results, in place.
@inline(__always)
func reducePairwise(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ combine: (Float, Float) -> Float) -> Float {
    var m = n
    while m > 1 {
        let half = m / 2
        for i in 0..<half { p[i] = combine(p[2 * i], p[2 * i + 1]) }
        if m % 2 == 1 { p[half] = p[m - 1] }
        m = half + m % 2
    }
    return p[0]
}

/// Reduces `x` over `axes` into a keepdim-shaped output with a combine function and identity.
/// Accumulation order is fixed by the shapes only (never by the thread count).
@inline(__always)
func reduceKernel(_ x: Tensor, _ axes: [Int], identity: Float, _ combine: (Float, Float) -> Float) throws -> Tensor {
    let keep = reducedShape(x.shape, axes, keepdim: true)
    let out = try Tensor(keep, zeroed: false)
    out.data.update(repeating: identity, count: out.count)
    if x.count == 0 { return out }
    let o = out.data, p = x.data
    // Fast path: reduce trailing dims (rows of a matrix). Long rows are cut into fixed blocks
    // reduced in parallel, with their partials combined pairwise; block boundaries depend on the
    // row length only, so the result is the same for any thread count, and it is far more
    // accurate than one running Float sum.
    let rank = x.shape.count
    if axes == Array((rank - axes.count)..<rank) {
        let n = x.shape[(rank - axes.count)...].reduce(1, *)
        let rows = x.count / max(n, 1)
        let block = 4096
        if n >= 2 * block {
            let nb = (n + block - 1) / block
            let partial = UnsafeMutablePointer<Float>.allocate(capacity: rows * nb)
            defer { partial.deallocate() }
            parallelFor(rows * nb, grain: 8) { bb in
                for b in bb {
                    let r = b / nb, lo = (b % nb) * block
                    partial[b] = reduceSpan(p + r * n + lo, min(block, n - lo), identity, combine)
                }
            }
            for r in 0..<rows { o[r] = reducePairwise(partial + r * nb, nb, combine) }
            return out
        }
        parallelFor(rows, grain: max(1, 32768 / max(n, 1))) { rr in
            for r in rr { o[r] = reduceSpan(p + r * n, n, identity, combine) }
        }
        return out
    }
    // General path: walk the input row-major; the output is an operand with stride 0 on reduced dims.
    let plan = LoopPlan(shape: x.shape, operandStrides: [contiguousStrides(x.shape), broadcastStrides(keep, to: x.shape)])
    let n = plan.inner, so = plan.strides[1].last!
    if so != 0 {
        // The innermost dim is kept (e.g. a sum over the batch dim): split it into column chunks
        // reduced in parallel; every output entry still accumulates its rows in row order.
        let rows = plan.rows
        parallelFor(n, grain: max(64, 32768 / max(rows, 1))) { cols in
            for r in 0..<rows {
                let pi = p + plan.rowOffset(r, 0), po = o + plan.rowOffset(r, 1)
                for i in cols { po[i] = combine(po[i], pi[i]) }
            }
        }
        return out
    }
    // The innermost dim is reduced (e.g. [N, C, HW] over N and HW): each input row is reduced
    // in parallel, then the row results are folded into their outputs in row order.
    let rows = plan.rows
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: rows)
    defer { partial.deallocate() }
    parallelFor(rows, grain: max(1, 32768 / max(n, 1))) { rr in
        for r in rr { partial[r] = reduceSpan(p + plan.rowOffset(r, 0), n, identity, combine) }
    }
    for r in 0..<rows {
        let po = o + plan.rowOffset(r, 1)
        po[0] = combine(po[0], partial[r])
    }
    return out
}

extension Tensor {
    /// Sum over `axes` (all when empty).
    public func sum(_ axes: [Int] = [], keepdim: Bool = false) throws -> Tensor {
        let ax = try normalizeAxes(axes, dim, op: "sum")
        let k = try reduceKernel(self, ax, identity: 0, +)
        let out = try k.reshape(reducedShape(shape, ax, keepdim: keepdim))
        return record(out, "sum", [self], attributes: ["axes": .ints(ax), "keepdim": .bool(keepdim)]) { [shape] g in
            [try broadcastTo(g.reshape(k.shape), shape)]
        }
    }

    public func sum(_ axis: Int, keepdim: Bool = false) throws -> Tensor { try sum([axis], keepdim: keepdim) }

    /// Mean over `axes` (all when empty).
    public func mean(_ axes: [Int] = [], keepdim: Bool = false) throws -> Tensor {
        let ax = try normalizeAxes(axes, dim, op: "mean")
        let n = ax.reduce(1) { $0 * shape[$1] }
        guard n > 0 else { throw TensorError("mean", "mean of an empty selection (shape \(fmt(shape)))") }
        return try sum(ax, keepdim: keepdim).mul(1 / Float(n))
    }

    public func mean(_ axis: Int, keepdim: Bool = false) throws -> Tensor { try mean([axis], keepdim: keepdim) }

    /// Maximum over `axes` (all when empty), like `torch.amax`. The gradient is shared equally by tied maxima.
    public func max(_ axes: [Int] = [], keepdim: Bool = false) throws -> Tensor { try extreme(axes, keepdim: keepdim, isMax: true) }
    public func max(_ axis: Int, keepdim: Bool = false) throws -> Tensor { try max([axis], keepdim: keepdim) }

    /// Minimum over `axes` (all when empty), like `torch.amin`.
    public func min(_ axes: [Int] = [], keepdim: Bool = false) throws -> Tensor { try extreme(axes, keepdim: keepdim, isMax: false) }
    public func min(_ axis: Int, keepdim: Bool = false) throws -> Tensor { try min([axis], keepdim: keepdim) }

    private func extreme(_ axes: [Int], keepdim: Bool, isMax: Bool) throws -> Tensor {
        let name = isMax ? "max" : "min"
        guard count > 0 else { throw TensorError(name, "reduction of an empty tensor (shape \(fmt(shape)))") }
        let ax = try normalizeAxes(axes, dim, op: name)
        for a in ax where shape[a] == 0 { throw TensorError(name, "reduction over dim \(a) of size 0") }
        // NaN propagates, as in PyTorch.
        let k = isMax
            ? try reduceKernel(self, ax, identity: -.infinity) { a, b in (b > a || b.isNaN) ? b : a }
            : try reduceKernel(self, ax, identity: .infinity) { a, b in (b < a || b.isNaN) ? b : a }
        let out = try k.reshape(reducedShape(shape, ax, keepdim: keepdim))
        return record(out, name, [self], attributes: ["axes": .ints(ax), "keepdim": .bool(keepdim)]) { [x = self] g in
            let mask = try broadcastBinary(x, k, op: name) { v, m in v == m ? 1 : 0 }
            let ties = try reduceKernel(mask, ax, identity: 0, +)
            let share = try broadcastBinary(g.reshape(k.shape), ties, op: name, /)
            return [try broadcastBinary(mask, share, op: name, *)]
        }
    }

    /// Index of the maximum along `axis` (flattened when nil), as a float tensor of indices.
    /// The first index wins ties, as in PyTorch.
    public func argmax(_ axis: Int? = nil, keepdim: Bool = false) throws -> Tensor { try argExtreme(axis, keepdim: keepdim, isMax: true) }
    public func argmin(_ axis: Int? = nil, keepdim: Bool = false) throws -> Tensor { try argExtreme(axis, keepdim: keepdim, isMax: false) }

    private func argExtreme(_ axis: Int?, keepdim: Bool, isMax: Bool) throws -> Tensor {
        let name = isMax ? "argmax" : "argmin"
        guard count > 0 else { throw TensorError(name, "reduction of an empty tensor (shape \(fmt(shape)))") }
        guard let axis else {
            var best = 0
            for i in 1..<Swift.max(count, 1) where isMax ? (data[i] > data[best] || (data[i].isNaN && !data[best].isNaN)) : (data[i] < data[best] || (data[i].isNaN && !data[best].isNaN)) { best = i }
            return try keepdim ? Tensor([Float(best)], shape: [Int](repeating: 1, count: dim)) : Tensor.scalar(Float(best))
        }
        let a = try normalizeAxis(axis, dim, op: name)
        if dim == 0 { return try Tensor.scalar(0) }
        guard shape[a] > 0 else { throw TensorError(name, "reduction over dim \(axis) of size 0") }
        let outer = shape[..<a].reduce(1, *), n = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        let out = try Tensor(reducedShape(shape, [a], keepdim: keepdim), zeroed: false)
        let p = data, o = out.data
        for i in 0..<outer {
            for j in 0..<inner {
                let base = p + i * n * inner + j
                var best = 0, bv = base[0]
                for k in 1..<Swift.max(n, 1) {
                    let v = base[k * inner]
                    if bv.isNaN { break }
                    if v.isNaN || (isMax ? v > bv : v < bv) { best = k; bv = v }
                }
                o[i * inner + j] = Float(best)
            }
        }
        return out
    }

    /// Variance over `axes` with Bessel's correction (`correction` 1 = unbiased, PyTorch's default).
    public func variance(_ axes: [Int] = [], correction: Int = 1, keepdim: Bool = false) throws -> Tensor {
        let ax = try normalizeAxes(axes, dim, op: "var")
        let n = ax.reduce(1) { $0 * shape[$1] }
        // Non-negative, so n - correction cannot overflow (the fuzzer's correction = Int.min did).
        guard correction >= 0 else { throw TensorError("var", "correction must be >= 0, got \(correction)") }
        guard n - correction > 0 else { throw TensorError("var", "need more than \(correction) element(s) over dims \(ax), got \(n)") }
        let centered = try self - (try mean(ax, keepdim: true))
        return try (centered * centered).sum(ax, keepdim: keepdim).mul(1 / Float(n - correction))
    }

    public func variance(_ axis: Int, correction: Int = 1, keepdim: Bool = false) throws -> Tensor {
        try variance([axis], correction: correction, keepdim: keepdim)
    }

    /// Standard deviation over `axes`: the square root of `variance` (same `correction`).
    public func std(_ axes: [Int] = [], correction: Int = 1, keepdim: Bool = false) throws -> Tensor {
        do { return try variance(axes, correction: correction, keepdim: keepdim).sqrt() }
        catch let e as TensorError { throw TensorError("std", e.message) }
    }

    public func std(_ axis: Int, correction: Int = 1, keepdim: Bool = false) throws -> Tensor {
        try std([axis], correction: correction, keepdim: keepdim)
    }
}
