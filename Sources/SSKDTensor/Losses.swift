#if canImport(Glibc)
import Glibc
#endif

/// How a loss reduces its per-element values (PyTorch's `reduction=`).
public enum Reduction: String, CaseIterable, Sendable {
    case none, mean, sum
    /// KL divergence only: sum divided by the batch size (PyTorch's `'batchmean'`).
    case batchmean

    public init(parsing s: String, op: String) throws {
        guard let r = Reduction(rawValue: s) else { throw TensorError(op, "unknown reduction '\(s)' (expected none, mean, sum\(op == "kl_div" ? " or batchmean" : ""))") }
        self = r
    }
}

/// Validated integral class indices from a float tensor of labels.
func classIndices(_ target: Tensor, classes: Int, op: String) throws -> [Int] {
    try (0..<target.count).map { i in
        let v = target.data[i]
        guard v == v.rounded(), v >= 0, v < Float(classes) else {
            throw TensorError(op, "target \(v) at position \(i) is not a class index in 0..<\(classes)")
        }
        return Int(v)
    }
}

extension Tensor {
    /// Cross-entropy between logits `[N, C]` and either class indices `[N]` or class
    /// probabilities `[N, C]`, like `F.cross_entropy` (with `label_smoothing`). As in PyTorch,
    /// logits may also be unbatched `[C]` (target `[]` or `[C]`) or `[N, C, d1, ...]` (target
    /// `[N, d1, ...]` or the logits' shape), where every position counts as a sample.
    public func crossEntropy(_ target: Tensor, labelSmoothing: Float = 0, reduction: Reduction = .mean) throws -> Tensor {
        if dim == 1 {
            guard target.shape == shape || target.dim == 0 else {
                throw TensorError("cross_entropy", "target shape \(fmt(target.shape)) matches neither [] (a class index) nor logits shape \(fmt(shape))")
            }
            let t = target.shape == shape ? try target.unsqueeze(0) : try target.reshape([1])
            let r = try unsqueeze(0).crossEntropy(t, labelSmoothing: labelSmoothing, reduction: reduction)
            return reduction == .none ? try r.reshape([]) : r
        }
        if dim > 2 {
            // Move the classes last and flatten the positions into the batch.
            let c = shape[1], positions = [shape[0]] + Array(shape[2...])
            let perm = [0] + Array(2..<dim) + [1]
            let t: Tensor
            if target.shape == shape { t = try target.permute(perm).reshape([-1, c]) }
            else {
                guard target.shape == positions else {
                    throw TensorError("cross_entropy", "target shape \(fmt(target.shape)) matches neither class indices \(fmt(positions)) nor logits shape \(fmt(shape))")
                }
                t = try target.reshape([-1])
            }
            let r = try permute(perm).reshape([-1, c]).crossEntropy(t, labelSmoothing: labelSmoothing, reduction: reduction)
            return reduction == .none ? try r.reshape(positions) : r
        }
        guard dim == 2 else { throw TensorError("cross_entropy", "expected logits of shape [N, C], [C] or [N, C, d1, ...], got \(fmt(shape))") }
        guard reduction != .batchmean else { throw TensorError("cross_entropy", "reduction 'batchmean' is for kl_div") }
        guard labelSmoothing >= 0 && labelSmoothing <= 1 else { throw TensorError("cross_entropy", "label_smoothing must be in [0, 1], got \(labelSmoothing)") }
        let (n, c) = (shape[0], shape[1])
        guard c > 0 else { throw TensorError("cross_entropy", "logits have 0 classes") }
        // q: the target distribution per row, after smoothing.
        let q = try Tensor([n, c])
        let eps = labelSmoothing
        if target.shape == shape {
            for i in 0..<(n * c) { q.data[i] = (1 - eps) * target.data[i] + eps / Float(c) }
        } else {
            guard target.shape == [n] else { throw TensorError("cross_entropy", "target shape \(fmt(target.shape)) matches neither [N] = [\(n)] class indices nor logits shape \(fmt(shape))") }
            let idx = try classIndices(target, classes: c, op: "cross_entropy")
            for i in 0..<n {
                for j in 0..<c { q.data[i * c + j] = eps / Float(c) }
                q.data[i * c + idx[i]] += 1 - eps
            }
        }
        let logp = try softmaxKernel(self, axis: 1, log: true)
        let per = try Tensor([n])
        for i in 0..<n {
            var s: Float = 0
            for j in 0..<c { let qq = q.data[i * c + j]; if qq != 0 { s -= qq * logp.data[i * c + j] } }
            per.data[i] = s
        }
        let out: Tensor
        switch reduction {
        case .none: out = per
        case .sum: out = try Tensor.scalar(per.toArray().reduce(0, +))
        default:
            guard n > 0 else { throw TensorError("cross_entropy", "mean over an empty batch") }
            out = try Tensor.scalar(per.toArray().reduce(0, +) / Float(n))
        }
        let softTarget = target.shape == shape
        return record(out, "cross_entropy", [self, target]) { [x = self] g in
            // dlogits = (softmax - q) * upstream (per row); dtarget (soft) = -logp * (1 - eps) * upstream
            let gx: Tensor = try Tensor([n, c])
            let gt: Tensor? = try (softTarget && target.requiresGrad) ? Tensor([n, c]) : nil
            for i in 0..<n {
                let up: Float = reduction == .none ? g.data[i] : (reduction == .sum ? g.data[0] : g.data[0] / Float(n))
                for j in 0..<c {
                    let k = i * c + j
                    if x.requiresGrad { gx.data[k] = (expf(logp.data[k]) - q.data[k]) * up }
                    gt?.data[k] = -logp.data[k] * (1 - eps) * up
                }
            }
            return [x.requiresGrad ? gx : nil, gt]
        }
    }

    /// KL divergence with log-probability input, like `F.kl_div(input, target)`:
    /// per element `target * (log(target) - input)` (0 where target is 0), or with
    /// `logTarget`, `exp(target) * (target - input)`. Default reduction: `batchmean`.
    public func klDiv(_ target: Tensor, reduction: Reduction = .batchmean, logTarget: Bool = false) throws -> Tensor {
        guard target.shape == shape else { throw TensorError("kl_div", "input shape \(fmt(shape)) and target shape \(fmt(target.shape)) differ") }
        let per = try zipMap(self, target) { x, t in
            if logTarget { return expf(t) * (t - x) }
            return t > 0 ? t * (logf(t) - x) : (t == 0 ? 0 : .nan)
        }
        let total = per.toArray().reduce(0, +)
        let out: Tensor
        let scale: Float
        switch reduction {
        case .none: out = per; scale = 1
        case .sum: out = try Tensor.scalar(total); scale = 1
        case .mean: scale = 1 / Float(Swift.max(count, 1)); out = try Tensor.scalar(total * scale)
        case .batchmean:
            let b = dim == 0 ? 1 : shape[0]
            scale = 1 / Float(Swift.max(b, 1)); out = try Tensor.scalar(total * scale)
        }
        return record(out, "kl_div", [self, target]) { [x = self] g in
            let up = reduction == .none ? g : try broadcastTo(g.mul(scale), x.shape)
            let gx: Tensor? = x.requiresGrad ? try zipMap(up, target) { u, t in logTarget ? -u * expf(t) : -u * t } : nil
            let gt: Tensor? = target.requiresGrad ? try zipMap3(up, x, target) { u, xi, t in
                logTarget ? u * expf(t) * (t - xi + 1) : (t > 0 ? u * (logf(t) + 1 - xi) : 0)
            } : nil
            return [gx, gt]
        }
    }

    /// Mean squared error, like `F.mse_loss` (shapes broadcast).
    public func mse(_ target: Tensor, reduction: Reduction = .mean) throws -> Tensor {
        guard reduction != .batchmean else { throw TensorError("mse_loss", "reduction 'batchmean' is for kl_div") }
        _ = try broadcastShapes(shape, target.shape, op: "mse_loss")
        let d = try self - target
        let sq = try d * d
        switch reduction {
        case .none: return sq
        case .sum: return try sq.sum()
        default: return try sq.mean()
        }
    }
}
