// Shape and indexing ops. Storage is always contiguous: reshape shares it (a view), the others copy.

/// Materialises `t` broadcast to `shape` (no autograd).
func broadcastTo(_ t: Tensor, _ shape: [Int]) throws -> Tensor {
    if t.shape == shape { return t }
    let out = try Tensor(shape, zeroed: false)
    let plan = LoopPlan(shape: shape, operandStrides: [contiguousStrides(shape), broadcastStrides(t.shape, to: shape)])
    let n = plan.inner, s = plan.strides[1].last!
    let o = out.data, p = t.data
    parallelFor(plan.rows, grain: Swift.max(1, 32768 / Swift.max(n, 1))) { rows in
        for r in rows {
            let po = o + plan.rowOffset(r, 0), pi = p + plan.rowOffset(r, 1)
            if s == 0 { po.update(repeating: pi[0], count: n) } else { for i in 0..<n { po[i] = pi[i * s] } }
        }
    }
    return out
}

/// Copies `src` (shape `shape`) into a new tensor whose dims are `src`'s permuted by `perm`.
func permuteKernel(_ src: Tensor, _ perm: [Int]) throws -> Tensor {
    let inShape = src.shape
    let outShape = perm.map { inShape[$0] }
    let inStrides = contiguousStrides(inShape)
    let out = try Tensor(outShape, zeroed: false)
    let plan = LoopPlan(shape: outShape, operandStrides: [contiguousStrides(outShape), perm.map { inStrides[$0] }])
    let n = plan.inner, s = plan.strides[1].last!
    let o = out.data, p = src.data
    // A transpose-like permute (the input's contiguous dim is not the output's innermost one):
    // copy tiles of [tile x tile] so that both the reads and the writes stay in cache lines.
    if s != 1, let j = plan.strides[1].firstIndex(of: 1), j < plan.dims.count - 1, plan.dims[j] >= 16, n >= 16 {
        let tile = 32
        let nj = plan.dims[j], oj = plan.strides[0][j]
        let outerIdx = plan.dims.indices.filter { $0 != j && $0 != plan.dims.count - 1 }
        let outer = outerIdx.reduce(1) { $0 * plan.dims[$1] }
        let tilesJ = (nj + tile - 1) / tile
        parallelFor(outer * tilesJ, grain: Swift.max(1, 32768 / (tile * n))) { units in
            // Through a small buffer, every cache line is read or written whole and at once,
            // which also sidesteps the cache-set conflicts of power-of-two strides.
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: tile * tile)
            defer { buf.deallocate() }
            for u in units {
                var rem = u / tilesJ, bo = 0, bi = 0
                for d in outerIdx.reversed() {
                    let c = rem % plan.dims[d]; rem /= plan.dims[d]
                    bo += c * plan.strides[0][d]; bi += c * plan.strides[1][d]
                }
                let i0 = (u % tilesJ) * tile, ni = Swift.min(nj, i0 + tile) - i0
                var k0 = 0
                while k0 < n {
                    let nk = Swift.min(n, k0 + tile) - k0
                    for k in 0..<nk {
                        let pi = p + bi + i0 + (k0 + k) * s, pb = buf + k
                        for i in 0..<ni { pb[i * tile] = pi[i] }
                    }
                    for i in 0..<ni { (o + bo + (i0 + i) * oj + k0).update(from: buf + i * tile, count: nk) }
                    k0 += nk
                }
            }
        }
        return out
    }
    parallelFor(plan.rows, grain: Swift.max(1, 32768 / Swift.max(n, 1))) { rows in
        for r in rows {
            let po = o + plan.rowOffset(r, 0), pi = p + plan.rowOffset(r, 1)
            if s == 1 { po.update(from: pi, count: n) } else { for i in 0..<n { po[i] = pi[i * s] } }
        }
    }
    return out
}

extension Tensor {
    /// A view with a new shape of the same element count; one dim may be -1 (inferred).
    public func reshape(_ newShape: [Int]) throws -> Tensor {
        var s = newShape
        let inferred = s.indices.filter { s[$0] == -1 }
        guard inferred.count <= 1 else { throw TensorError("reshape", "only one dimension can be inferred (-1) in \(fmt(newShape))") }
        for d in s where d < -1 { throw TensorError("reshape", "invalid dimension \(d) in \(fmt(newShape))") }
        if let i = inferred.first {
            // Products are overflow-checked: a bad shape must throw, not trap.
            var known = 1
            for (j, d) in s.enumerated() where j != i {
                let (m, o) = known.multipliedReportingOverflow(by: d)
                guard !o else { throw TensorError("reshape", "shape \(fmt(newShape)) is too large") }
                known = m
            }
            guard known > 0, count % known == 0 else { throw TensorError("reshape", "shape \(fmt(newShape)) is invalid for input of size \(count) (shape \(fmt(shape)))") }
            s[i] = count / known
        }
        // A view: its element count is checked, no memory is asked for.
        guard try MemoryLimit.checkedCount(s, op: "reshape") == count else { throw TensorError("reshape", "shape \(fmt(newShape)) is invalid for input of size \(count) (shape \(fmt(shape)))") }
        if s == shape { return self }
        let out = Tensor(shape: s, storage: storage)
        return record(out, "reshape", [self]) { [shape] g in [try g.reshape(shape)] }
    }

    /// Same as `reshape` (storage is always contiguous, so every reshape is a view).
    public func view(_ newShape: [Int]) throws -> Tensor { try reshape(newShape) }

    /// Flattens dims `start...end` into one.
    public func flatten(start: Int = 0, end: Int = -1) throws -> Tensor {
        if dim == 0 { return try reshape([1]) }
        let s = try normalizeAxis(start, dim, op: "flatten"), e = try normalizeAxis(end, dim, op: "flatten")
        guard s <= e else { throw TensorError("flatten", "start dim \(start) comes after end dim \(end)") }
        let merged = shape[s...e].reduce(1, *)
        return try reshape(Array(shape[..<s]) + [merged] + Array(shape[(e + 1)...]))
    }

    /// Inserts a dim of size 1 at `d` (in `-(dim+1)...dim`).
    public func unsqueeze(_ d: Int) throws -> Tensor {
        let a = d < 0 ? d + dim + 1 : d
        guard a >= 0 && a <= dim else { throw TensorError("unsqueeze", "dim \(d) out of range for a tensor of \(dim) dims (expected in \(-(dim + 1))...\(dim))") }
        var s = shape; s.insert(1, at: a)
        return try reshape(s)
    }

    /// Removes dim `d` if its size is 1, or every size-1 dim when `d` is nil.
    public func squeeze(_ d: Int? = nil) throws -> Tensor {
        guard let d else { return try reshape(shape.filter { $0 != 1 }) }
        let a = try normalizeAxis(d, dim, op: "squeeze")
        guard dim > 0, shape[a] == 1 else { return self }
        var s = shape; s.remove(at: a)
        return try reshape(s)
    }

    /// Reorders dims (copies).
    public func permute(_ dims: [Int]) throws -> Tensor {
        guard dims.count == dim else { throw TensorError("permute", "got \(dims.count) dims \(dims) for a tensor of \(dim) dims") }
        let perm = try dims.map { try normalizeAxis($0, dim, op: "permute") }
        guard Set(perm).count == dim else { throw TensorError("permute", "dims \(dims) repeat a dimension") }
        if perm == Array(0..<dim) { return self }
        let out = try permuteKernel(self, perm)
        var inverse = [Int](repeating: 0, count: dim)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        return record(out, "permute", [self], attributes: ["dims": .ints(perm)]) { g in [try permuteKernel(g, inverse)] }
    }

    /// Swaps two dims (copies).
    public func transpose(_ d0: Int, _ d1: Int) throws -> Tensor {
        let a = try normalizeAxis(d0, dim, op: "transpose"), b = try normalizeAxis(d1, dim, op: "transpose")
        var p = Array(0..<dim); p.swapAt(a, b)
        return try permute(p)
    }

    /// Transpose of a 2-D tensor (`x.t()`).
    public func t() throws -> Tensor {
        guard dim <= 2 else { throw TensorError("t", "expects a tensor with <= 2 dims, got shape \(fmt(shape))") }
        return dim < 2 ? self : try transpose(0, 1)
    }

    /// Storage is always contiguous, so this is the identity (kept for PyTorch-style code).
    public func contiguous() -> Tensor { self }

    /// Broadcasts to `newShape` (copies); -1 keeps a dim. The gradient sums back.
    public func expand(_ newShape: [Int]) throws -> Tensor {
        guard newShape.count >= dim else { throw TensorError("expand", "the number of sizes \(newShape.count) must be at least the tensor's \(dim) dims (shape \(fmt(shape)))") }
        var target = newShape
        let lead = newShape.count - dim
        for i in 0..<newShape.count {
            if newShape[i] == -1 {
                guard i >= lead else { throw TensorError("expand", "-1 is not allowed in a new leading dim (\(fmt(newShape)))") }
                target[i] = shape[i - lead]
            }
            guard target[i] >= 0 else { throw TensorError("expand", "invalid size \(newShape[i]) in \(fmt(newShape))") }
            if i >= lead { guard shape[i - lead] == target[i] || shape[i - lead] == 1 else {
                throw TensorError("expand", "the expanded size \(target[i]) must match the existing size \(shape[i - lead]) at dim \(i) (shape \(fmt(shape)) to \(fmt(newShape)))") } }
        }
        try validateShape(target, op: "expand")
        // Same shape: return self unrecorded (broadcastTo would hand back self, and recording
        // it would make the tensor its own input).
        if target == shape { return self }
        let out = try broadcastTo(self, target)
        return record(out, "expand", [self]) { [shape] g in [try g.sumTo(shape)] }
    }

    /// `length` entries of dim `d` from `start` (copies), like `torch.narrow`.
    public func narrow(_ d: Int, start: Int, length: Int) throws -> Tensor {
        guard dim > 0 else { throw TensorError("narrow", "cannot be applied to a 0-dim tensor") }
        let a = try normalizeAxis(d, dim, op: "narrow")
        let n = shape[a]
        let s0 = start < 0 ? start + n : start
        guard s0 >= 0, s0 <= n, length >= 0, length <= n - s0 else { throw TensorError("narrow", "start \(start) + length \(length) exceeds dim \(d) of size \(n) (shape \(fmt(shape)))") }
        return try slice(a, start: s0, end: s0 + length)
    }

    /// Python-style slice `start:end:step` of dim `d` (copies). Negative bounds count from the
    /// end; bounds are clamped like Python's; `step` must be positive.
    public func slice(_ d: Int, start: Int? = nil, end: Int? = nil, step: Int = 1) throws -> Tensor {
        guard dim > 0 else { throw TensorError("slice", "cannot slice a 0-dim tensor") }
        let a = try normalizeAxis(d, dim, op: "slice")
        guard step > 0 else { throw TensorError("slice", "step must be positive, got \(step)") }
        let n = shape[a]
        func clampIndex(_ v: Int?, _ dflt: Int) -> Int {
            guard var v else { return dflt }
            if v < 0 { v += n }
            return Swift.min(Swift.max(v, 0), n)
        }
        let lo = clampIndex(start, 0), hi = clampIndex(end, n)
        let indices = lo < hi ? Array(stride(from: lo, to: hi, by: step)) : []
        return try indexSelect(a, indices, opName: "slice")
    }

    /// Entries `indices` of dim `d` (copies), like `torch.index_select`; negative indices count from the end.
    public func indexSelect(_ d: Int, _ indices: [Int]) throws -> Tensor { try indexSelect(d, indices, opName: "index_select") }

    func indexSelect(_ d: Int, _ indices: [Int], opName: String) throws -> Tensor {
        guard dim > 0 else { throw TensorError(opName, "cannot index a 0-dim tensor along a dim") }
        let a = try normalizeAxis(d, dim, op: opName)
        let n = shape[a]
        let idx = try indices.map { i -> Int in
            let j = i < 0 ? i + n : i
            guard j >= 0 && j < n else { throw TensorError(opName, "index \(i) is out of bounds for dim \(d) with size \(n)") }
            return j
        }
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        var outShape = shape; outShape[a] = idx.count
        let out = try Tensor(outShape, zeroed: false)
        let p = data, o = out.data, m = idx.count
        for i in 0..<outer {
            for (k, j) in idx.enumerated() {
                (o + (i * m + k) * inner).update(from: p + (i * n + j) * inner, count: inner)
            }
        }
        return record(out, opName, [self]) { [shape] g in
            let gi = try Tensor(shape)
            let gp = g.data, q = gi.data
            for i in 0..<outer {
                for (k, j) in idx.enumerated() {
                    let dst = q + (i * n + j) * inner, src = gp + (i * m + k) * inner
                    for e in 0..<inner { dst[e] += src[e] }
                }
            }
            return [gi]
        }
    }

    /// Gathers along dim `d`: `out[i][j][k] = self[index[i][j][k]][j][k]` for d = 0, and so on,
    /// like `torch.gather`. `index` holds integral values and has this tensor's rank; its sizes
    /// may be smaller than self's on dims other than `d`.
    public func gather(_ d: Int, _ index: Tensor) throws -> Tensor {
        let a = try normalizeAxis(d, dim, op: "gather")
        if dim == 0 && index.dim == 0 {
            // A 0-dim input is gathered like a 1-element vector.
            return try reshape([1]).gather(0, index.reshape([1])).reshape([])
        }
        guard index.dim == dim else { throw TensorError("gather", "index has \(index.dim) dims, input has \(dim) (shapes \(fmt(index.shape)), \(fmt(shape)))") }
        for i in 0..<dim where i != a && index.shape[i] > shape[i] {
            throw TensorError("gather", "index size \(index.shape[i]) exceeds input size \(shape[i]) at dim \(i)")
        }
        let n = shape[a]
        let out = try Tensor(index.shape, zeroed: false)
        let iStrides = contiguousStrides(index.shape), sStrides = contiguousStrides(shape)
        var offsets = [Int](repeating: 0, count: index.count)
        for e in 0..<index.count {
            let v = index.data[e]
            guard v == v.rounded(), v >= Float(-n), v < Float(n) else { throw TensorError("gather", "index \(v) is out of bounds (or not an integer) for dim \(d) with size \(n)") }
            var j = Int(v); if j < 0 { j += n }
            var rem = e, off = 0
            for k in 0..<dim {
                let c = rem / iStrides[k]; rem %= iStrides[k]
                off += (k == a ? j : c) * sStrides[k]
            }
            offsets[e] = off
            out.data[e] = data[off]
        }
        return record(out, "gather", [self]) { [shape] g in
            let gi = try Tensor(shape)
            for e in 0..<offsets.count { gi.data[offsets[e]] += g.data[e] }
            return [gi]
        }
    }

    /// Concatenates along dim `d`; all other dims must match.
    public static func cat(_ tensors: [Tensor], dim d: Int = 0) throws -> Tensor {
        guard let first = tensors.first else { throw TensorError("cat", "expected a non-empty list of tensors") }
        let a = try normalizeAxis(d, first.dim, op: "cat")
        for (i, t) in tensors.enumerated() where t.dim == 0 {
            throw TensorError("cat", "zero-dimensional tensor (at position \(i)) cannot be concatenated")
        }
        for (i, t) in tensors.enumerated() {
            guard t.dim == first.dim, t.shape.enumerated().allSatisfy({ $0.offset == a || $0.element == first.shape[$0.offset] }) else {
                throw TensorError("cat", "sizes of tensors must match except in dim \(d): tensor 0 has shape \(fmt(first.shape)), tensor \(i) has \(fmt(t.shape))")
            }
        }
        let outer = first.shape[..<a].reduce(1, *), inner = first.shape[(a + 1)...].reduce(1, *)
        let sizes = tensors.map { $0.shape[a] }
        let total = sizes.reduce(0, +)
        var outShape = first.shape; outShape[a] = total
        let out = try Tensor(outShape, zeroed: false)
        var off = 0
        for (t, s) in zip(tensors, sizes) {
            for i in 0..<outer { (out.data + (i * total + off) * inner).update(from: t.data + i * s * inner, count: s * inner) }
            off += s
        }
        return record(out, "cat", tensors, attributes: ["dim": .int(a)]) { g in
            var res: [Tensor?] = []
            var off = 0
            for (t, s) in zip(tensors, sizes) {
                if t.requiresGrad {
                    let gt = try Tensor(t.shape, zeroed: false)
                    for i in 0..<outer { (gt.data + i * s * inner).update(from: g.data + (i * total + off) * inner, count: s * inner) }
                    res.append(gt)
                } else { res.append(nil) }
                off += s
            }
            return res
        }
    }

    /// Splits dim `d` into pieces of `size` entries (the last may be smaller), like `torch.split`.
    public func split(_ size: Int, dim d: Int = 0) throws -> [Tensor] {
        guard dim > 0 else { throw TensorError("split", "cannot split a 0-dim tensor") }
        let a = try normalizeAxis(d, dim, op: "split")
        guard size > 0 else { throw TensorError("split", "split size must be positive, got \(size)") }
        let n = shape[a]
        if n == 0 { return [self] }
        return try stride(from: 0, to: n, by: size).map { try narrow(a, start: $0, length: Swift.min(size, n - $0)) }
    }

    /// Splits dim `d` into `chunks` pieces of equal size (the last may be smaller, and fewer
    /// pieces come back when the dim is too short), like `torch.chunk`.
    public func chunk(_ chunks: Int, dim d: Int = 0) throws -> [Tensor] {
        guard chunks > 0 else { throw TensorError("chunk", "number of chunks must be positive, got \(chunks)") }
        guard dim > 0 else { throw TensorError("chunk", "cannot chunk a 0-dim tensor") }
        let a = try normalizeAxis(d, dim, op: "chunk")
        let size = shape[a] == 0 ? 1 : (shape[a] - 1) / chunks + 1
        return try split(size, dim: a)
    }

    /// Stacks equal-shaped tensors along a new dim `d`.
    public static func stack(_ tensors: [Tensor], dim d: Int = 0) throws -> Tensor {
        guard let first = tensors.first else { throw TensorError("stack", "expected a non-empty list of tensors") }
        for (i, t) in tensors.enumerated() where t.shape != first.shape {
            throw TensorError("stack", "stack expects each tensor to be equal size, but got \(fmt(first.shape)) at entry 0 and \(fmt(t.shape)) at entry \(i)")
        }
        let a = d < 0 ? d + first.dim + 1 : d
        guard a >= 0 && a <= first.dim else { throw TensorError("stack", "dim \(d) out of range for tensors of \(first.dim) dims") }
        return try cat(tensors.map { try $0.unsqueeze(a) }, dim: a)
    }
}
