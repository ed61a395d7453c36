// EfficientNet B0..B7 (Tan & Le 2019), laid out exactly like torchvision.models.efficientnet_b*
// so state-dict keys and weights interchange with it.
//
// features.0        Conv2dNormActivation(inC, 32w, 3x3, stride 2, SiLU)
// features.1 ... 7  one Sequential per stage of MBConv blocks (depth ceil(n * depth_mult))
// features.8        Conv2dNormActivation(320w, 4 * 320w, 1x1, SiLU)
// avgpool           AdaptiveAvgPool2d(1); flatten
// classifier        Sequential(Dropout(p, inplace), Linear(1280w, classes))
// Block k of K gets stochastic depth p = stochastic_depth_prob * k / K.

import SSKDTensor

/// One MBConv stage row of the EfficientNet table, before and after width/depth scaling.
public struct MBConvConfig: Equatable, Sendable {
    public var expandRatio: Double
    public var kernel: Int
    public var stride: Int
    public var inputChannels: Int
    public var outChannels: Int
    public var numLayers: Int

    /// A row of the B0 table scaled like torchvision's `MBConvConfig`: channels by
    /// `makeDivisible(c * width, 8)`, layers by `ceil(n * depth)`.
    public init(expandRatio: Double, kernel: Int, stride: Int, inputChannels: Int, outChannels: Int, numLayers: Int,
                widthMult: Double = 1, depthMult: Double = 1) {
        self.expandRatio = expandRatio; self.kernel = kernel; self.stride = stride
        self.inputChannels = MBConvConfig.adjustChannels(inputChannels, widthMult)
        self.outChannels = MBConvConfig.adjustChannels(outChannels, widthMult)
        self.numLayers = Int((Double(numLayers) * depthMult).rounded(.up))
    }

    public static func adjustChannels(_ c: Int, _ widthMult: Double) -> Int { makeDivisible(Double(c) * widthMult, 8) }
}

/// Mobile inverted bottleneck with squeeze-excitation: [1x1 expand] -> kxk depthwise ->
/// SE(squeeze = max(1, in / 4)) -> 1x1 projection (no activation), plus a stochastic-depth
/// residual when the stride is 1 and the channels match.
/// Children: `block` (Sequential), `stochastic_depth`.
public final class MBConv: Module {
    public override var isPerSampleInEval: Bool { true }
    public let config: MBConvConfig
    public let useResConnect: Bool
    public let block: Sequential
    public let stochasticDepth: StochasticDepth

    /// Layers are created uninitialised (zero weights); the model initialises them.
    public init(_ cnf: MBConvConfig, stochasticDepthProb: Double, norm: BatchNorm2d.Settings = .init(), generator: Generator = .default) throws {
        guard cnf.stride == 1 || cnf.stride == 2 else { throw TensorError("MBConv", "illegal stride value \(cnf.stride)") }
        config = cnf
        useResConnect = cnf.stride == 1 && cnf.inputChannels == cnf.outChannels
        var layers: [Module] = []
        let expanded = MBConvConfig.adjustChannels(cnf.inputChannels, cnf.expandRatio)
        if expanded != cnf.inputChannels {
            layers.append(try Conv2dNormActivation(cnf.inputChannels, expanded, kernelSize: 1, norm: norm, activation: { SiLU(inplace: true) }, initialize: false, generator: generator))
        }
        layers.append(try Conv2dNormActivation(expanded, expanded, kernelSize: cnf.kernel, stride: cnf.stride, groups: expanded, norm: norm,
                                               activation: { SiLU(inplace: true) }, initialize: false, generator: generator))
        let squeeze = max(1, cnf.inputChannels / 4)
        layers.append(try SqueezeExcitation(expanded, squeeze, activation: SiLU(inplace: true), initialize: false, generator: generator))
        layers.append(try Conv2dNormActivation(expanded, cnf.outChannels, kernelSize: 1, norm: norm, activation: nil, initialize: false, generator: generator))
        block = Sequential(layers)
        stochasticDepth = try StochasticDepth(p: stochasticDepthProb, mode: .row)
        super.init()
        registerModule("block", block)
        registerModule("stochastic_depth", stochasticDepth)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        var y = try block(x)
        if useResConnect {
            y = try stochasticDepth(y)
            y = try y + x
        }
        return y
    }
}

/// EfficientNet with torchvision's architecture, initialisation and state-dict keys.
public final class EfficientNet: Module {
    public override var isPerSampleInEval: Bool { true }
    public struct Config: Equatable, Sendable {
        public var classes: Int = 1000
        public var widthMult: Double = 1.0
        public var depthMult: Double = 1.0
        /// Classifier dropout.
        public var dropout: Double = 0.2
        /// Stochastic depth of the last block (block k of K gets p * k / K).
        public var stochasticDepthProb: Double = 0.2
        public var inputChannels: Int = 3
        public var norm: BatchNorm2d.Settings = .init()
        /// Channels of the last 1x1 conv (nil: 4 x the last stage's channels, as for B0..B7).
        public var lastChannel: Int? = nil

        public init(classes: Int = 1000, widthMult: Double = 1.0, depthMult: Double = 1.0, dropout: Double = 0.2,
                    stochasticDepthProb: Double = 0.2, inputChannels: Int = 3, norm: BatchNorm2d.Settings = .init()) {
            self.classes = classes; self.widthMult = widthMult; self.depthMult = depthMult; self.dropout = dropout
            self.stochasticDepthProb = stochasticDepthProb; self.inputChannels = inputChannels; self.norm = norm
        }

        /// torchvision's compound-scaled variant `b0` ... `b7` (width, depth, dropout; B5..B7
        /// use BatchNorm eps 1e-3, momentum 0.01; stochastic depth 0.2 for all).
        public static func variant(_ n: Int, classes: Int = 1000) throws -> Config {
            let table: [(Double, Double, Double)] = [
                (1.0, 1.0, 0.2), (1.0, 1.1, 0.2), (1.1, 1.2, 0.3), (1.2, 1.4, 0.3),
                (1.4, 1.8, 0.4), (1.6, 2.2, 0.4), (1.8, 2.6, 0.5), (2.0, 3.1, 0.5),
            ]
            guard n >= 0 && n < table.count else { throw TensorError("EfficientNet", "variant b\(n) does not exist (b0 ... b7)") }
            let (w, d, p) = table[n]
            return Config(classes: classes, widthMult: w, depthMult: d, dropout: p,
                          norm: n >= 5 ? .init(eps: 1e-3, momentum: 0.01) : .init())
        }

        /// The seven MBConv stages after scaling.
        public var stages: [MBConvConfig] {
            [(1.0, 3, 1, 32, 16, 1), (6.0, 3, 2, 16, 24, 2), (6.0, 5, 2, 24, 40, 2), (6.0, 3, 2, 40, 80, 3),
             (6.0, 5, 1, 80, 112, 3), (6.0, 5, 2, 112, 192, 4), (6.0, 3, 1, 192, 320, 1)].map {
                MBConvConfig(expandRatio: $0.0, kernel: $0.1, stride: $0.2, inputChannels: $0.3, outChannels: $0.4,
                             numLayers: $0.5, widthMult: widthMult, depthMult: depthMult)
            }
        }
    }

    public let config: Config
    /// Channels entering the classifier.
    public let lastChannel: Int

    public var features: Module { child("features")! }
    /// The head: `Sequential(Dropout, Linear(lastChannel, classes))` by default; assign any
    /// module mapping `[N, lastChannel]` to logits.
    public var classifier: Module {
        get { child("classifier")! }
        set { registerModule("classifier", newValue) }
    }

    /// - Parameters:
    ///   - initialize: false leaves every weight zero (cheap; for loading a checkpoint next).
    ///   - generator: source of the initial weights.
    public init(_ config: Config = .init(), initialize: Bool = true, generator: Generator = .default) throws {
        guard config.classes > 0 else { throw TensorError("EfficientNet", "classes must be positive, got \(config.classes)") }
        // Bounded (B7 has 2.0 and 3.1) so channel and layer counts stay Ints.
        guard config.widthMult > 0, config.depthMult > 0, config.widthMult <= 100, config.depthMult <= 100 else {
            throw TensorError("EfficientNet", "width and depth multipliers must be in (0, 100], got \(config.widthMult), \(config.depthMult)")
        }
        guard config.inputChannels > 0 else { throw TensorError("EfficientNet", "input channels must be positive, got \(config.inputChannels)") }
        guard config.stochasticDepthProb >= 0, config.stochasticDepthProb <= 1 else {
            throw TensorError("EfficientNet", "stochastic depth probability must be in [0, 1], got \(config.stochasticDepthProb)")
        }
        self.config = config
        let stages = config.stages
        var layers: [Module] = [try Conv2dNormActivation(config.inputChannels, stages[0].inputChannels, kernelSize: 3, stride: 2,
                                                         norm: config.norm, activation: { SiLU(inplace: true) }, initialize: false, generator: generator)]
        let totalBlocks = stages.reduce(0) { $0 + $1.numLayers }
        var blockID = 0
        for cnf in stages {
            var stage: [Module] = []
            for _ in 0..<cnf.numLayers {
                var b = cnf
                if !stage.isEmpty { b.inputChannels = b.outChannels; b.stride = 1 }
                let p = config.stochasticDepthProb * Double(blockID) / Double(totalBlocks)
                stage.append(try MBConv(b, stochasticDepthProb: p, norm: config.norm, generator: generator))
                blockID += 1
            }
            layers.append(Sequential(stage))
        }
        let lastIn = stages[stages.count - 1].outChannels
        lastChannel = config.lastChannel ?? 4 * lastIn
        layers.append(try Conv2dNormActivation(lastIn, lastChannel, kernelSize: 1, norm: config.norm, activation: { SiLU(inplace: true) }, initialize: false, generator: generator))
        super.init()
        registerModule("features", Sequential(layers))
        registerModule("avgpool", AdaptiveAvgPool2d(1))
        registerModule("classifier", Sequential(try Dropout(p: config.dropout, inplace: true), try classifierLinear(lastChannel, config.classes, generator: generator, model: "EfficientNet")))
        if initialize { resetParameters(generator: generator) }
    }

    /// `efficientnet_b0` ... `efficientnet_b7` with `classes` outputs.
    public convenience init(variant n: Int, classes: Int = 1000, initialize: Bool = true, generator: Generator = .default) throws {
        try self.init(Config.variant(n, classes: classes), initialize: initialize, generator: generator)
    }

    /// torchvision's initialisation: convs kaiming_normal(fan_out) with zero bias, BatchNorm
    /// weight 1 / bias 0, Linear U(-1/sqrt(out), 1/sqrt(out)) with zero bias.
    public func resetParameters(generator: Generator = .default) {
        for m in modules() {
            if let c = m as? Conv2d {
                Init.kaimingNormal_(c.weight, mode: .fanOut, generator: generator)
                if let b = c.bias { Init.zeros_(b) }
            } else if let bn = m as? BatchNorm2d {
                Init.ones_(bn.weight); Init.zeros_(bn.bias)
            } else if let l = m as? Linear {
                let r = 1 / Float(l.outFeatures).squareRoot()
                Init.uniform_(l.weight, low: -r, high: r, generator: generator)
                if let b = l.bias { Init.zeros_(b) }
            }
        }
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        guard x.dim == 4, x.shape[1] == config.inputChannels else {
            throw TensorError("EfficientNet", "expected input [N, \(config.inputChannels), H, W], got \(x.shape)")
        }
        var y = try features(x)
        if let pool = child("avgpool") { y = try pool(y) }
        y = try y.flatten(start: 1)
        return try classifier(y)
    }
}
