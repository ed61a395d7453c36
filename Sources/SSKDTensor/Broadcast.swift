/// NumPy broadcasting: shapes are right-aligned; a dim of 1 (or a missing leading dim) stretches.
public func broadcastShapes(_ a: [Int], _ b: [Int], op: String = "broadcast") throws -> [Int] {
    let n = max(a.count, b.count)
    var out = [Int](repeating: 1, count: n)
    for i in 0..<n {
        let da = i < n - a.count ? 1 : a[i - (n - a.count)]
        let db = i < n - b.count ? 1 : b[i - (n - b.count)]
        guard da == db || da == 1 || db == 1 else {
            throw TensorError(op, "shapes \(fmt(a)) and \(fmt(b)) cannot be broadcast together (dim \(i): \(da) vs \(db))")
        }
        out[i] = da == 1 ? db : da
    }
    try validateShape(out, op: op)
    return out
}

/// Element strides of a contiguous tensor of `shape` viewed as `outShape` (0 on stretched dims).
@inline(__always) func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let n = outShape.count, k = shape.count
    let own = contiguousStrides(shape)
    var s = [Int](repeating: 0, count: n)
    for i in 0..<k where shape[i] != 1 { s[n - k + i] = own[i] }
    return s
}

/// A loop nest over an output shape with one or two strided operands, after merging adjacent
/// dims that are contiguous for every operand and dropping dims of size 1. The innermost dim is
/// run by a tight loop; the outer dims are enumerated as rows.
struct LoopPlan {
    var dims: [Int]          // coalesced sizes, innermost last (at least one entry)
    var strides: [[Int]]     // per operand, per dim
    var inner: Int { dims[dims.count - 1] }
    var rows: Int { dims.dropLast().reduce(1, *) }

    init(shape: [Int], operandStrides: [[Int]]) {
        var d: [Int] = []
        var s: [[Int]] = Array(repeating: [], count: operandStrides.count)
        for i in 0..<shape.count where shape[i] != 1 {
            if !d.isEmpty, operandStrides.indices.allSatisfy({ s[$0].last! == operandStrides[$0][i] * shape[i] }) {
                d[d.count - 1] *= shape[i]
                for k in operandStrides.indices { s[k][s[k].count - 1] = operandStrides[k][i] }
            } else {
                d.append(shape[i])
                for k in operandStrides.indices { s[k].append(operandStrides[k][i]) }
            }
        }
        if d.isEmpty { d = [1]; for k in s.indices { s[k] = [0] } }
        dims = d
        strides = s
    }

    /// Offsets of operand `k` at the start of row `r`.
    @inline(__always) func rowOffset(_ r: Int, _ k: Int) -> Int {
        var rem = r, off = 0
        let st = strides[k]
        var i = dims.count - 2
        while i >= 0 {
            let n = dims[i]
            off += (rem % n) * st[i]
            rem /= n
            i -= 1
        }
        return off
    }
}

/// out = f(a, b) with broadcasting.
@inline(__always)
func broadcastBinary(_ a: Tensor, _ b: Tensor, op: String, _ f: (Float, Float) -> Float) throws -> Tensor {
    if a.shape == b.shape {
        let out = try Tensor(a.shape, zeroed: false)
        let o = out.data, x = a.data, y = b.data
        parallelStream(out.count) { r in for i in r { o[i] = f(x[i], y[i]) } }
        return out
    }
    let shape = try broadcastShapes(a.shape, b.shape, op: op)
    let out = try Tensor(shape, zeroed: false)
    let o = out.data, x = a.data, y = b.data
    if b.count == 1 {
        let v = y[0]
        if a.count == out.count {
            parallelStream(out.count) { r in for i in r { o[i] = f(x[i], v) } }
            return out
        }
    }
    if a.count == 1 && b.count == out.count {
        let v = x[0]
        parallelStream(out.count) { r in for i in r { o[i] = f(v, y[i]) } }
        return out
    }
    let plan = LoopPlan(shape: shape, operandStrides: [contiguousStrides(shape), broadcastStrides(a.shape, to: shape), broadcastStrides(b.shape, to: shape)])
    let n = plan.inner, sa = plan.strides[1].last!, sb = plan.strides[2].last!
    parallelFor(plan.rows, grain: max(1, 32768 / max(n, 1))) { rows in
        for r in rows {
            let po = o + plan.rowOffset(r, 0), pa = x + plan.rowOffset(r, 1), pb = y + plan.rowOffset(r, 2)
            if sa == 1 && sb == 1 { for i in 0..<n { po[i] = f(pa[i], pb[i]) } }
            else if sa == 1 { let v = pb[0]; for i in 0..<n { po[i] = f(pa[i], v) } }
            else if sb == 1 { let v = pa[0]; for i in 0..<n { po[i] = f(v, pb[i]) } }
            else { for i in 0..<n { po[i] = f(pa[i * sa], pb[i * sb]) } }
        }
    }
    return out
}

/// out = f(a) elementwise.
@inline(__always)
func unaryMap(_ a: Tensor, _ f: (Float) -> Float) throws -> Tensor {
    let out = try Tensor(a.shape, zeroed: false)
    let o = out.data, x = a.data
    parallelStream(out.count) { r in for i in r { o[i] = f(x[i]) } }
    return out
}

/// out = f(a, b) for equal shapes (gradient helpers).
@inline(__always)
func zipMap(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) throws -> Tensor {
    let out = try Tensor(a.shape, zeroed: false)
    let o = out.data, x = a.data, y = b.data
    parallelStream(out.count) { r in for i in r { o[i] = f(x[i], y[i]) } }
    return out
}

/// out = f(a, b, c) for equal shapes (gradient helpers).
@inline(__always)
func zipMap3(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: (Float, Float, Float) -> Float) throws -> Tensor {
    let out = try Tensor(a.shape, zeroed: false)
    let o = out.data, x = a.data, y = b.data, z = c.data
    parallelStream(out.count) { r in for i in r { o[i] = f(x[i], y[i], z[i]) } }
    return out
}

extension Tensor {
    /// Expands a gradient of the broadcast shape back to this shape's by summing stretched dims.
    func reduceGrad(_ g: Tensor) throws -> Tensor {
        if g.shape == shape { return g }
        return try g.sumTo(shape)
    }

    /// Sums a broadcast-shaped tensor down to `target` (a shape it was broadcast from).
    public func sumTo(_ target: [Int]) throws -> Tensor {
        if target == shape { return self }
        guard (try? broadcastShapes(target, shape)) == shape else {
            throw TensorError("sum_to", "shape \(fmt(shape)) cannot be summed to \(fmt(target))")
        }
        let lead = shape.count - target.count
        var axes: [Int] = Array(0..<lead)
        for i in 0..<target.count where target[i] == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        let s = try sum(axes, keepdim: true)
        return try s.reshape(target)
    }
}
