// Containers: Sequential (children named "0", "1", ...) and Identity.

import SSKDTensor

/// Runs its children in order (`nn.Sequential`). Children can be replaced by index
/// (`seq[1] = Linear(1280, 10)`), which is how a classifier head is swapped.
open class Sequential: Module {
    public init(_ layers: [Module]) {
        super.init()
        for (i, m) in layers.enumerated() { registerModule(String(i), m) }
    }

    public convenience init(_ layers: Module...) { self.init(layers) }

    public var count: Int { children.count }

    /// The i-th layer. Setting replaces it (an index past the end is ignored by the setter; use
    /// `append`).
    public subscript(i: Int) -> Module {
        get { children[i].module }
        set { if i >= 0 && i < children.count { registerModule(children[i].name, newValue) } }
    }

    /// The i-th layer, or nil when out of range.
    public func layer(_ i: Int) -> Module? { i >= 0 && i < children.count ? children[i].module : nil }

    /// Adds a layer at the end, named by its position.
    public func append(_ m: Module) { registerModule(String(children.count), m) }

    /// Per-sample as a container (its children decide); a subclass with its own forward should
    /// override this when it mixes samples.
    open override var isPerSampleInEval: Bool { true }

    open override func forward(_ x: Tensor) throws -> Tensor {
        if InferenceFusion.applies(to: self) { return try fusedForward(x) }
        var y = x
        var i = 0
        while i < children.count {
            let m = children[i].module
            // Training: BatchNorm2d -> ReLU / ReLU6 / SiLU as one op (`BatchNorm2d.fusesActivation`).
            if let bn = m as? BatchNorm2d, bn.training, BatchNorm2d.fusesActivation, SummaryRecorder.active == nil,
               i + 1 < children.count, let act = children[i + 1].module as? FusableActivation {
                y = try bn.forward(y, activation: act.fused)
                i += 2
                continue
            }
            y = try m(y)
            i += 1
        }
        return y
    }

    /// The eval, no-grad forward with `Conv2d -> BatchNorm2d [-> activation]` runs fused: the
    /// norm folded into the conv, the activation applied in place on the conv's fresh output.
    func fusedForward(_ x: Tensor) throws -> Tensor {
        var y = x
        var i = 0
        while i < children.count {
            let m = children[i].module
            if let conv = m as? Conv2d, i + 1 < children.count, let bn = children[i + 1].module as? BatchNorm2d, !bn.training,
               bn.numFeatures == conv.outChannels {
                y = try conv.forwardFoldingBatchNorm(y, bn)
                i += 2
                if i < children.count, let act = children[i].module as? InPlaceActivation {
                    // Records no op, so the profiler is told directly (a branch when it is off).
                    try Profiler.measure("activations", phase: .forward) { try act.applyInPlace(y) }
                    i += 1
                }
                continue
            }
            y = try m(y)
            i += 1
        }
        return y
    }
}

/// Inference fast paths, used in eval mode under `withNoGrad` only (training and any forward
/// that records a graph run the layers one by one on the whole batch):
/// - `Sequential` children fused: conv + batch norm folding, in-place activations;
/// - the batch split into one slice per thread for per-sample models (`Module.callAsFunction`).
public enum InferenceFusion {
    /// On by default; switch off to run eval forwards layer by layer on the whole batch (e.g. to compare).
    nonisolated(unsafe) public static var enabled = true

    static func applies(to m: Module) -> Bool {
        enabled && !m.training && !GradMode.isEnabled && SummaryRecorder.active == nil
    }

    /// Slices to split `x` into for `m`'s forward, or nil to run it whole.
    static func batchSlices(_ m: Module, _ x: Tensor) -> Int? {
        let threads = Runtime.availableThreads
        guard threads > 1, enabled, !GradMode.isEnabled, x.dim == 4, x.shape[0] >= 2, !x.requiresGrad,
              SummaryRecorder.active == nil, !Profiler.enabled, m.splitsBatchInEval else { return nil }
        return Swift.min(threads, x.shape[0])
    }
}

/// An activation module that can overwrite its input (used by the fused eval forward).
protocol InPlaceActivation {
    func applyInPlace(_ x: Tensor) throws
}

/// Returns its input (`nn.Identity`), e.g. to drop a classifier head.
public final class Identity: Module {
    public override var isPerSampleInEval: Bool { true }
    public override init() {}
    public override func forward(_ x: Tensor) throws -> Tensor { x }
}
