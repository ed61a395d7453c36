// MobileNetV2 (Sandler et al. 2018), laid out exactly like torchvision.models.mobilenet_v2 so
// state-dict keys and weights interchange with it.
//
// features.0            Conv2dNormActivation(inC, 32w, 3x3, stride 2, ReLU6)
// features.1 ... 17     InvertedResidual blocks from the (t, c, n, s) table
// features.18           Conv2dNormActivation(320w, 1280 * max(1, w), 1x1, ReLU6)
// (adaptive avg pool to 1x1, flatten: functional, no module)
// classifier            Sequential(Dropout(p), Linear(1280, classes))

import SSKDTensor

/// torchvision's `_make_divisible`: rounds `v` to the nearest multiple of `divisor` (at least
/// `minValue`, default `divisor`) without going more than 10 % below `v`.
public func makeDivisible(_ v: Double, _ divisor: Int = 8, minValue: Int? = nil) -> Int {
    let minV = minValue ?? divisor
    var newV = max(minV, Int(v + Double(divisor) / 2) / divisor * divisor)
    if Double(newV) < 0.9 * v { newV += divisor }
    return newV
}

/// MobileNetV2's inverted residual: [1x1 expand] -> 3x3 depthwise -> 1x1 linear projection,
/// with a skip connection when the stride is 1 and the channels match.
/// Children: `conv` = Sequential(Conv2dNormActivation..., Conv2d, BatchNorm2d).
public final class InvertedResidual: Module {
    public override var isPerSampleInEval: Bool { true }
    public let inChannels: Int, outChannels: Int, stride: Int, expandRatio: Int
    public let useResConnect: Bool
    public let conv: Sequential

    /// Layers are created uninitialised (zero weights); the model initialises them.
    public init(_ inChannels: Int, _ outChannels: Int, stride: Int, expandRatio: Int, norm: BatchNorm2d.Settings = .init(),
                generator: Generator = .default) throws {
        guard stride == 1 || stride == 2 else { throw TensorError("InvertedResidual", "stride should be 1 or 2 instead of \(stride)") }
        guard expandRatio >= 1 else { throw TensorError("InvertedResidual", "expand ratio must be >= 1, got \(expandRatio)") }
        self.inChannels = inChannels; self.outChannels = outChannels; self.stride = stride; self.expandRatio = expandRatio
        let hidden = Int((Double(inChannels) * Double(expandRatio)).rounded(.toNearestOrEven))
        useResConnect = stride == 1 && inChannels == outChannels
        var layers: [Module] = []
        if expandRatio != 1 {
            layers.append(try Conv2dNormActivation(inChannels, hidden, kernelSize: 1, norm: norm, activation: { ReLU6(inplace: true) }, initialize: false, generator: generator))
        }
        layers.append(try Conv2dNormActivation(hidden, hidden, stride: stride, groups: hidden, norm: norm, activation: { ReLU6(inplace: true) }, initialize: false, generator: generator))
        layers.append(try Conv2d(hidden, outChannels, kernelSize: 1, bias: false, initialize: false, generator: generator))
        layers.append(try BatchNorm2d(outChannels, settings: norm))
        conv = Sequential(layers)
        super.init()
        registerModule("conv", conv)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        useResConnect ? try x + conv(x) : try conv(x)
    }
}

/// MobileNetV2 with torchvision's architecture, initialisation and state-dict keys.
public final class MobileNetV2: Module {
    public override var isPerSampleInEval: Bool { true }
    public struct Config: Equatable, Sendable {
        public var classes: Int = 1000
        public var widthMult: Double = 1.0
        /// Channel rounding (`round_nearest`); 1 turns rounding off.
        public var roundNearest: Int = 8
        public var dropout: Double = 0.2
        /// 3 for RGB, 1 for grayscale (torchvision fixes 3).
        public var inputChannels: Int = 3
        /// (expand ratio t, channels c, repeats n, first stride s) per stage.
        public var setting: [[Int]] = MobileNetV2.defaultSetting
        public var norm: BatchNorm2d.Settings = .init()
        public init(classes: Int = 1000, widthMult: Double = 1.0, dropout: Double = 0.2, inputChannels: Int = 3) {
            self.classes = classes; self.widthMult = widthMult; self.dropout = dropout; self.inputChannels = inputChannels
        }
    }

    public static let defaultSetting: [[Int]] = [
        [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1],
    ]

    public let config: Config
    public let lastChannel: Int

    /// The convolutional trunk (registered in init; replacing keeps the name, so never nil).
    public var features: Module { child("features")! }
    /// The head: `Sequential(Dropout, Linear(lastChannel, classes))` by default. Assign any
    /// module mapping `[N, lastChannel]` to logits (the paper: Linear(1280 -> 10)).
    public var classifier: Module {
        get { child("classifier")! }
        set { registerModule("classifier", newValue) }
    }

    /// - Parameters:
    ///   - initialize: false leaves every weight zero (cheap; for loading a checkpoint next).
    ///   - generator: source of the initial weights.
    public init(_ config: Config = .init(), initialize: Bool = true, generator: Generator = .default) throws {
        guard config.classes > 0 else { throw TensorError("MobileNetV2", "classes must be positive, got \(config.classes)") }
        // Bounded (far above any published variant) so channel counts stay Ints.
        guard config.widthMult > 0, config.widthMult <= 100 else { throw TensorError("MobileNetV2", "width multiplier must be in (0, 100], got \(config.widthMult)") }
        guard config.inputChannels > 0 else { throw TensorError("MobileNetV2", "input channels must be positive, got \(config.inputChannels)") }
        guard config.roundNearest > 0 else { throw TensorError("MobileNetV2", "round_nearest must be positive, got \(config.roundNearest)") }
        guard !config.setting.isEmpty, config.setting.allSatisfy({ $0.count == 4 && $0.allSatisfy { $0 > 0 } }) else {
            throw TensorError("MobileNetV2", "inverted residual setting must be a non-empty list of positive [t, c, n, s], got \(config.setting)")
        }
        self.config = config
        var inputChannel = makeDivisible(32 * config.widthMult, config.roundNearest)
        lastChannel = makeDivisible(1280 * max(1.0, config.widthMult), config.roundNearest)
        var features: [Module] = [try Conv2dNormActivation(config.inputChannels, inputChannel, stride: 2, norm: config.norm,
                                                           activation: { ReLU6(inplace: true) }, initialize: false, generator: generator)]
        for row in config.setting {
            let (t, c, n, s) = (row[0], row[1], row[2], row[3])
            let out = makeDivisible(Double(c) * config.widthMult, config.roundNearest)
            for i in 0..<n {
                features.append(try InvertedResidual(inputChannel, out, stride: i == 0 ? s : 1, expandRatio: t, norm: config.norm, generator: generator))
                inputChannel = out
            }
        }
        features.append(try Conv2dNormActivation(inputChannel, lastChannel, kernelSize: 1, norm: config.norm,
                                                 activation: { ReLU6(inplace: true) }, initialize: false, generator: generator))
        super.init()
        registerModule("features", Sequential(features))
        registerModule("classifier", Sequential(try Dropout(p: config.dropout), try classifierLinear(lastChannel, config.classes, generator: generator, model: "MobileNetV2")))
        if initialize { resetParameters(generator: generator) }
    }

    /// torchvision's initialisation: convs kaiming_normal(fan_out) with zero bias, BatchNorm
    /// weight 1 / bias 0, Linear N(0, 0.01) with zero bias.
    public func resetParameters(generator: Generator = .default) {
        for m in modules() {
            if let c = m as? Conv2d {
                Init.kaimingNormal_(c.weight, mode: .fanOut, generator: generator)
                if let b = c.bias { Init.zeros_(b) }
            } else if let bn = m as? BatchNorm2d {
                Init.ones_(bn.weight); Init.zeros_(bn.bias)
            } else if let l = m as? Linear {
                Init.normal_(l.weight, mean: 0, std: 0.01, generator: generator)
                if let b = l.bias { Init.zeros_(b) }
            }
        }
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        guard x.dim == 4, x.shape[1] == config.inputChannels else {
            throw TensorError("MobileNetV2", "expected input [N, \(config.inputChannels), H, W], got \(x.shape)")
        }
        var y = try features(x)
        y = try adaptiveAvgPool2d(y, outputSize: [1, 1])
        y = try y.flatten(start: 1)
        return try classifier(y)
    }
}
