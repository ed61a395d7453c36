// Batch normalisation. Shapes: input/output [N, C, H, W]; weight, bias, running_mean,
// running_var [C]; num_batches_tracked [] (saved as int64, like PyTorch).

import SSKDTensor

/// `nn.BatchNorm2d` with affine weight/bias and tracked running statistics.
///
/// Training: normalises with the batch statistics and updates
/// `running = (1 - momentum) * running + momentum * batch` (unbiased batch variance), counting
/// `num_batches_tracked`; with `momentum == nil` the update is a cumulative average
/// (factor 1 / num_batches_tracked). Eval: normalises with the running statistics.
public final class BatchNorm2d: Module {
    public override var isPerSampleInEval: Bool { true }
    /// eps and momentum (torchvision's EfficientNet-B5..B7 use eps 1e-3, momentum 0.01).
    public struct Settings: Equatable, Sendable {
        public var eps: Double
        public var momentum: Double?
        public init(eps: Double = 1e-5, momentum: Double? = 0.1) { self.eps = eps; self.momentum = momentum }
    }

    public let numFeatures: Int
    public let settings: Settings
    public let weight: Tensor, bias: Tensor
    public let runningMean: Tensor, runningVar: Tensor
    /// Number of training batches seen (a Float-held integer; saved as I64).
    public let numBatchesTracked: Tensor

    public init(_ numFeatures: Int, settings: Settings = .init()) throws {
        guard numFeatures > 0 else { throw TensorError("BatchNorm2d", "num_features must be positive, got \(numFeatures)") }
        guard settings.eps > 0, settings.momentum.map({ $0 >= 0 && $0 <= 1 }) ?? true else {
            throw TensorError("BatchNorm2d", "need eps > 0 and momentum in [0, 1], got eps \(settings.eps), momentum \(String(describing: settings.momentum))")
        }
        self.numFeatures = numFeatures
        self.settings = settings
        weight = try Tensor.ones([numFeatures])
        bias = try Tensor.zeros([numFeatures])
        runningMean = try Tensor.zeros([numFeatures])
        runningVar = try Tensor.ones([numFeatures])
        numBatchesTracked = try Tensor.scalar(0)
        super.init()
        registerParameter("weight", weight)
        registerParameter("bias", bias)
        registerBuffer("running_mean", runningMean)
        registerBuffer("running_var", runningVar)
        registerBuffer("num_batches_tracked", numBatchesTracked, dtype: .i64)
    }

    public convenience init(_ numFeatures: Int, eps: Double = 1e-5, momentum: Double? = 0.1) throws {
        try self.init(numFeatures, settings: .init(eps: eps, momentum: momentum))
    }

    /// Resets the running statistics and the batch counter.
    public func resetRunningStats() {
        runningMean.fill_(0); runningVar.fill_(1); numBatchesTracked.fill_(0)
    }

    /// Whether a `Sequential` runs this norm and a following ReLU / ReLU6 / SiLU as one fused op in
    /// training mode (same results, one pass less each way, no intermediate tensor). On by default;
    /// switch off to compare.
    nonisolated(unsafe) public static var fusesActivation = true

    public override func forward(_ x: Tensor) throws -> Tensor { try forward(x, activation: nil) }

    /// The norm followed by `activation` (fused in training mode, see `batchNorm2d`).
    public func forward(_ x: Tensor, activation: FusedActivation?) throws -> Tensor {
        guard x.dim == 4, x.shape[1] == numFeatures else {
            throw TensorError("BatchNorm2d", "expected input [N, \(numFeatures), H, W], got \(x.shape)")
        }
        // The counter advances only when the step succeeds; the cumulative-average factor uses
        // the count including this batch.
        let factor = settings.momentum.map(Float.init) ?? 1 / (numBatchesTracked.data[0] + 1)
        let y = try batchNorm2d(x, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias,
                                training: training, momentum: factor, eps: Float(settings.eps), activation: activation)
        if training { numBatchesTracked.data[0] += 1 }
        return y
    }

    public override var extraRepr: String {
        "\(numFeatures), eps=\(pyFloat(settings.eps)), momentum=\(settings.momentum.map(pyFloat) ?? "None"), affine=True, bias=True, track_running_stats=True"
    }
}
