import COpenBLAS

/// C[m,n] (+)= op(A) op(B) through `cblas_sgemm`, row-major. `transA`: A is stored [k,m].
/// `beta` 0 overwrites C, 1 accumulates into it.
@inline(__always)
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    Runtime.ensureInitialised()
    if m == 0 || n == 0 { return }
    if k == 0 {
        if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
    let threads = Runtime.availableThreads
    guard threads > 1 && m * n * k >= 1 << 17 && (n >= 32 * threads || m >= 32 * threads) else {
        cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        return
    }
    // Split C into one block of columns (or of rows when n is the smaller side) per thread, each a
    // single-threaded OpenBLAS call: at our 1x1-convolution shapes OpenBLAS's own threads barely
    // scaled ([40,240]x[240,4608]: 1.56 -> 1.45 ms from 1 to 2 threads). Splitting the larger side
    // leaves each thread the least to pack. Blocks start at multiples of 16 (the micro-kernel's width).
    let splitN = n >= m || m < 32 * threads
    let total = splitN ? n : m
    let step = ((total + threads - 1) / threads + 15) & ~15
    parallelTasks((total + step - 1) / step) { t in
        let lo = t * step, cnt = Swift.min(total, lo + step) - lo
        if splitN {
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(cnt), Int32(k), alpha, a, Int32(lda),
                        b + (transB ? lo * ldb : lo), Int32(ldb), beta, c + lo, Int32(ldc))
        } else {
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(cnt), Int32(n), Int32(k), alpha, a + (transA ? lo : lo * lda), Int32(lda),
                        b, Int32(ldb), beta, c + lo * ldc, Int32(ldc))
        }
    }
}

/// Element offset of each batch's matrix for an operand with batch dims `own`, broadcast to
/// `batch` (a stretched dim reuses the same matrix).
func batchOffsets(_ own: [Int], to batch: [Int], matrix: Int) -> [Int] {
    let st = broadcastStrides(own, to: batch)
    return (0..<batch.reduce(1, *)).map { i in
        var rem = i, off = 0
        for d in stride(from: batch.count - 1, through: 0, by: -1) { off += (rem % batch[d]) * st[d]; rem /= batch[d] }
        return off * matrix
    }
}

extension Tensor {
    /// Matrix product with `torch.matmul`'s rules: 1-D operands are promoted (and the added dim
    /// removed), batch dims broadcast, and each batch runs one sgemm.
    public func matmul(_ other: Tensor) throws -> Tensor {
        guard dim >= 1, other.dim >= 1 else { throw TensorError("matmul", "both arguments need at least 1 dim, got \(fmt(shape)) and \(fmt(other.shape))") }
        let a2 = dim == 1 ? try unsqueeze(0) : self
        let b2 = other.dim == 1 ? try other.unsqueeze(1) : other
        let (m, k) = (a2.shape[a2.dim - 2], a2.shape[a2.dim - 1])
        let (k2, n) = (b2.shape[b2.dim - 2], b2.shape[b2.dim - 1])
        guard k == k2 else { throw TensorError("matmul", "shapes \(fmt(shape)) and \(fmt(other.shape)) cannot be multiplied (\(m)x\(k) and \(k2)x\(n))") }
        let batchA = Array(a2.shape.dropLast(2)), batchB = Array(b2.shape.dropLast(2))
        let batch = try broadcastShapes(batchA, batchB, op: "matmul")
        try validateShape(batch + [m, n], op: "matmul")
        let nb = batch.reduce(1, *)
        // A 2-D right operand (the common [B, T, k] @ [k, n]) is not copied per batch: the
        // batches of A stack into one [nb*m, k] @ [k, n] product. Otherwise broadcast batches
        // are addressed in place through per-batch offsets, never materialised.
        let fold = batchB.isEmpty && batchA == batch
        let ea = a2.detach(), eb = b2.detach()
        let offA = batchOffsets(batchA, to: batch, matrix: m * k), offB = batchOffsets(batchB, to: batch, matrix: k * n)
        let out = try Tensor(batch + [m, n], zeroed: false)
        if fold {
            sgemm(transA: false, transB: false, m: nb * m, n: n, k: k, a: ea.data, lda: k, b: eb.data, ldb: n, c: out.data, ldc: n)
        } else {
            for i in 0..<nb {
                sgemm(transA: false, transB: false, m: m, n: n, k: k, a: ea.data + offA[i], lda: k, b: eb.data + offB[i], ldb: n, c: out.data + i * m * n, ldc: n)
            }
        }
        var result = out
        if dim == 1 { result = try result.squeeze(result.dim - 2) }
        if other.dim == 1 { result = try result.squeeze(result.dim - 1) }
        let finalShape = result.shape
        let r = Tensor(shape: finalShape, storage: out.storage)
        return record(r, "matmul", [self, other]) { [a = self, b = other] g in
            let g3 = try g.reshape(batch + [m, n])
            var ga: Tensor? = nil, gb: Tensor? = nil
            if a.requiresGrad {
                // dA = dC B^T
                let t = try Tensor(batch + [m, k], zeroed: false)
                if fold { sgemm(transA: false, transB: true, m: nb * m, n: k, k: n, a: g3.data, lda: n, b: eb.data, ldb: n, c: t.data, ldc: k) }
                else { for i in 0..<nb { sgemm(transA: false, transB: true, m: m, n: k, k: n, a: g3.data + i * m * n, lda: n, b: eb.data + offB[i], ldb: n, c: t.data + i * m * k, ldc: k) } }
                ga = try t.sumTo(a2.shape).reshape(a.shape)
            }
            if b.requiresGrad {
                // dB = A^T dC (summed over the batches when B was shared by all of them)
                if fold {
                    let t = try Tensor([k, n], zeroed: false)
                    sgemm(transA: true, transB: false, m: k, n: n, k: nb * m, a: ea.data, lda: k, b: g3.data, ldb: n, c: t.data, ldc: n)
                    gb = try t.reshape(b.shape)
                    return [ga, gb]
                }
                let t = try Tensor(batch + [k, n], zeroed: false)
                for i in 0..<nb { sgemm(transA: true, transB: false, m: k, n: n, k: m, a: ea.data + offA[i], lda: k, b: g3.data + i * m * n, ldb: n, c: t.data + i * k * n, ldc: n) }
                gb = try t.sumTo(b2.shape).reshape(b.shape)
            }
            return [ga, gb]
        }
    }
}
