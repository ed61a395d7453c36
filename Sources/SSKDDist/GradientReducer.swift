// Data-parallel gradient averaging: after every rank's backward on its share of the global
// batch, each parameter's gradient becomes the one a single process would have computed on the
// whole batch.
//
//   rank r's gradient  g_r = d(mean loss over its n_r images)/dw
//   averaged           g = sum_r n_r * g_r / sum_r n_r
//
// which equals the gradient of the mean loss over the global batch (for losses that are means
// over the batch, as cross-entropy and the KD term are), also for a last batch split unevenly.
// Gradients travel in buckets: one flat Float32 buffer of at most `bucketBytes` per run of
// consecutive parameters, reduced with one MPI_Allreduce each (DDP's bucketing). The last bucket
// also carries one presence flag per parameter (a parameter no rank's loss reached keeps a nil
// gradient, so the optimizer skips it as it would in one process) and the caller's control
// values (summed: e.g. "some rank was interrupted").

import SSKDTensor

public final class GradientReducer {
    public let communicator: Communicator
    public let parameters: [Tensor]
    /// Parameter index ranges, one per bucket.
    public let buckets: [Range<Int>]
    private var buffers: [[Float]]

    /// - bucketBytes: the most gradient bytes per all-reduce (a parameter larger than that gets a
    ///   bucket of its own).
    public init(communicator: Communicator, parameters: [Tensor], bucketBytes: Int = 4 << 20) {
        self.communicator = communicator
        self.parameters = parameters
        var buckets: [Range<Int>] = []
        var start = 0, bytes = 0
        for (i, p) in parameters.enumerated() {
            let b = p.count * MemoryLayout<Float>.stride
            if i > start && bytes + b > bucketBytes { buckets.append(start..<i); start = i; bytes = 0 }
            bytes += b
        }
        if start < parameters.count || parameters.isEmpty { buckets.append(start..<parameters.count) }
        self.buckets = buckets
        self.buffers = buckets.map { r in [Float](repeating: 0, count: r.reduce(0) { $0 + parameters[$1].count }) }
    }

    /// Gradient floats per step (what each rank sends into the ring).
    public var gradientCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Replaces every parameter's gradient by the batch-weighted average over the ranks.
    ///
    /// - localCount: images this rank's loss averaged over (0: it contributes nothing).
    /// - globalCount: images of the global batch (the sum of every rank's `localCount`).
    /// - control: values summed over the ranks alongside the gradients, in place.
    public func reduce(localCount: Int, globalCount: Int, control: inout [Float]) throws {
        let comm = communicator
        guard comm.size > 1 else { return }
        guard globalCount > 0 else { throw DistError("all_reduce", "a global batch of 0 images") }
        let w = Float(localCount)
        // The last buffer grows by the flags and the control values for this call.
        let extra = parameters.count + control.count
        for (k, range) in buckets.enumerated() {
            let isLast = k == buckets.count - 1
            let n = range.reduce(0) { $0 + parameters[$1].count }
            if buffers[k].count != n + (isLast ? extra : 0) { buffers[k] = [Float](repeating: 0, count: n + (isLast ? extra : 0)) }
            buffers[k].withUnsafeMutableBufferPointer { buf in
                var off = 0
                for i in range {
                    let p = parameters[i]
                    if let g = p.grad, localCount > 0 {
                        for j in 0..<p.count { buf[off + j] = g.data[j] * w }
                    } else {
                        for j in 0..<p.count { buf[off + j] = 0 }
                    }
                    off += p.count
                }
                if isLast {
                    for (i, p) in parameters.enumerated() { buf[n + i] = p.grad != nil && localCount > 0 ? 1 : 0 }
                    for (i, v) in control.enumerated() { buf[n + parameters.count + i] = v }
                }
            }
        }
        for k in buffers.indices {
            try buffers[k].withUnsafeMutableBufferPointer { try comm.allReduce($0.baseAddress!, count: $0.count, op: .sum) }
        }
        let last = buffers[buffers.count - 1]
        let nLast = last.count - extra
        for i in control.indices { control[i] = last[nLast + parameters.count + i] }
        let inv = 1 / Float(globalCount)
        for (k, range) in buckets.enumerated() {
            try buffers[k].withUnsafeBufferPointer { buf in
                var off = 0
                for i in range {
                    let p = parameters[i]
                    defer { off += p.count }
                    guard last[nLast + i] > 0 else { p.grad = nil; continue }
                    // A fresh tensor: the old gradient may be shared with the graph.
                    let g = try Tensor.empty(p.shape)
                    for j in 0..<p.count { g.data[j] = buf[off + j] * inv }
                    p.grad = g
                }
            }
        }
    }
}
