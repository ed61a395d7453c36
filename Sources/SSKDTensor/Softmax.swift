#if canImport(Glibc)
import Glibc
#endif

// softmax / log_softmax along one dim, with hand-written gradients; logsumexp composed.
// Layout: the dim splits the tensor into [outer, n, inner]; each (outer, inner) column is one
// distribution of n entries.

@inline(__always)
func softmaxKernel(_ x: Tensor, axis a: Int, log: Bool) throws -> Tensor {
    let outer = x.shape[..<a].reduce(1, *), n = x.shape[a], inner = x.shape[(a + 1)...].reduce(1, *)
    let out = try Tensor(x.shape, zeroed: false)
    let p = x.data, o = out.data
    parallelFor(outer * inner, grain: Swift.max(1, 8192 / Swift.max(n, 1))) { cols in
        for c in cols {
            let i = c / inner, j = c % inner
            let src = p + i * n * inner + j, dst = o + i * n * inner + j
            var m = -Float.infinity
            for k in 0..<n { m = Swift.max(m, src[k * inner]) }
            if m == -.infinity { m = 0 }
            var s: Float = 0
            for k in 0..<n { let e = expf(src[k * inner] - m); dst[k * inner] = e; s += e }
            if log {
                let ls = logf(s) + m
                for k in 0..<n { dst[k * inner] = src[k * inner] - ls }
            } else {
                let inv = 1 / s
                for k in 0..<n { dst[k * inner] *= inv }
            }
        }
    }
    return out
}

extension Tensor {
    /// Softmax along `dim`.
    public func softmax(_ dim: Int) throws -> Tensor {
        let a = try normalizeAxis(dim, self.dim, op: "softmax")
        if self.dim == 0 { return try reshape([1]).softmax(0).reshape([]) }
        let out = try softmaxKernel(self, axis: a, log: false)
        return record(out, "softmax", [self], attributes: ["dim": .int(a)]) { [out = out.detach()] g in
            // dx = y * (g - sum(g * y))
            let s = try (g * out).sum([a], keepdim: true)
            return [try (g - s) * out]
        }
    }

    /// Log-softmax along `dim` (numerically stable).
    public func logSoftmax(_ dim: Int) throws -> Tensor {
        let a = try normalizeAxis(dim, self.dim, op: "log_softmax")
        if self.dim == 0 { return try reshape([1]).logSoftmax(0).reshape([]) }
        let out = try softmaxKernel(self, axis: a, log: true)
        return record(out, "log_softmax", [self], attributes: ["dim": .int(a)]) { [out = out.detach()] g in
            // dx = g - softmax * sum(g)
            let s = try g.sum([a], keepdim: true)
            let sm = try unaryMap(out) { expf($0) }
            return [try g - sm * s]
        }
    }

    /// log(sum(exp(x))) over `dims`, stable: the max is subtracted first.
    public func logsumexp(_ dims: [Int], keepdim: Bool = false) throws -> Tensor {
        let ax = try normalizeAxes(dims, dim, op: "logsumexp")
        let m = try withNoGrad { () -> Tensor in
            let k = try reduceKernel(self, ax, identity: -.infinity) { Swift.max($0, $1) }
            return try unaryMap(k) { $0.isFinite ? $0 : 0 }
        }
        let s = try (self - m).exp().sum(ax, keepdim: true).log() + m
        return keepdim ? s : try s.reshape(reducedShape(shape, ax, keepdim: false))
    }

    public func logsumexp(_ dim: Int, keepdim: Bool = false) throws -> Tensor { try logsumexp([dim], keepdim: keepdim) }
}
