// Composable image transforms (torchvision.transforms vocabulary).
//
// A transform maps an `Image` [C, H, W] to another, drawing any randomness from the generator
// it is given. The loader passes `Generator.derived(seed:, epoch, index[, view])`, so the
// draws for a sample depend only on (seed, epoch, index): runs are identical whatever the
// thread count or prefetching. Parameters are drawn in torchvision's order (e.g. ColorJitter:
// the permutation of the four adjustments first, then the factors).

import Foundation
import SSKDTensor

/// An image transform; random ones draw from `generator`.
public protocol Transform: CustomStringConvertible {
    func apply(_ image: Image, generator: Generator) throws -> Image
    /// This transform as data (`TransformSpec`), or nil when it cannot be rebuilt from data
    /// (random augmentations, closures). Default: nil.
    var specs: [TransformSpec]? { get }
}

extension Transform {
    public var specs: [TransformSpec]? { nil }
}

extension Generator {
    /// Uniform in [low, high) (torch's `empty(1).uniform_(low, high)`).
    @inline(__always) func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * nextDouble() }
}

/// Checks a size given to a transform (a crop or resize target, a padding): `minimum ...
/// TF.maxImageSize`, named in the error.
func checkedTransformSize(_ v: Int, _ what: String, _ op: String, minimum: Int = 1) throws -> Int {
    guard v >= minimum, v <= TF.maxImageSize else { throw DataError(op, "\(what) must be in \(minimum)...\(TF.maxImageSize), got \(v)") }
    return v
}

/// Applies transforms in order (`transforms.Compose`).
public struct Compose: Transform {
    public var transforms: [Transform]
    public init(_ transforms: [Transform]) { self.transforms = transforms }
    public func apply(_ image: Image, generator: Generator) throws -> Image {
        var x = image
        for t in transforms { x = try t.apply(x, generator: generator) }
        return x
    }
    public var description: String { "Compose(" + transforms.map(\.description).joined(separator: ", ") + ")" }
    /// The parts' specs in order, or nil when any part has none.
    public var specs: [TransformSpec]? {
        var out: [TransformSpec] = []
        for t in transforms { guard let s = t.specs else { return nil }; out += s }
        return out
    }
}

/// Resizes with bilinear interpolation (antialiased when shrinking, as torchvision v2's default).
/// `Resize(size)` matches the smaller edge to `size`; `Resize(height:width:)` sets both.
public struct Resize: Transform {
    public enum Size: Sendable { case smallerEdge(Int), exact(height: Int, width: Int) }
    public var size: Size
    public var antialias: Bool
    public init(_ size: Int, antialias: Bool = true) throws {
        self.size = .smallerEdge(try checkedTransformSize(size, "size", "Resize")); self.antialias = antialias
    }
    public init(height: Int, width: Int, antialias: Bool = true) throws {
        self.size = .exact(height: try checkedTransformSize(height, "height", "Resize"), width: try checkedTransformSize(width, "width", "Resize"))
        self.antialias = antialias
    }
    public func apply(_ image: Image, generator: Generator) throws -> Image {
        switch size {
        case .smallerEdge(let s):
            guard s > 0 else { throw DataError("Resize", "size must be positive, got \(s)") }
            let (h, w) = try TF.resizedSize(height: image.height, width: image.width, smallerEdge: s)
            return try TF.resize(image, height: h, width: w, antialias: antialias)
        case .exact(let h, let w):
            return try TF.resize(image, height: h, width: w, antialias: antialias)
        }
    }
    public var description: String {
        switch size {
        case .smallerEdge(let s): return "Resize(\(s))"
        case .exact(let h, let w): return "Resize(\(h)x\(w))"
        }
    }
    public var specs: [TransformSpec]? {
        switch size {
        case .smallerEdge(let s): return [TransformSpec("resize", size: s, antialias: antialias)]
        case .exact(let h, let w): return [TransformSpec("resize", height: h, width: w, antialias: antialias)]
        }
    }
}

/// Crops the centre (`transforms.CenterCrop`).
public struct CenterCrop: Transform {
    public var height: Int, width: Int
    public init(_ size: Int) throws { try self.init(height: size, width: size) }
    public init(height: Int, width: Int) throws {
        self.height = try checkedTransformSize(height, "height", "CenterCrop")
        self.width = try checkedTransformSize(width, "width", "CenterCrop")
    }
    public func apply(_ image: Image, generator: Generator) throws -> Image {
        try TF.centerCrop(image, height: height, width: width)
    }
    public var description: String { "CenterCrop(\(height)x\(width))" }
    public var specs: [TransformSpec]? { [TransformSpec("center_crop", height: height, width: width)] }
}

/// Resizes (bilinear, keeping the aspect ratio) so the image just covers `height x width`, then
/// crops the centre: torchvision's `Resize` + `CenterCrop` at inference, for any target shape.
/// An image already `height x width` is returned as is.
public struct ResizeCrop: Transform {
    public var height: Int, width: Int
    public init(height: Int, width: Int) throws {
        self.height = try checkedTransformSize(height, "height", "ResizeCrop")
        self.width = try checkedTransformSize(width, "width", "ResizeCrop")
    }
    public func apply(_ image: Image, generator: Generator) throws -> Image {
        if image.height == height && image.width == width { return image }
        // The scale that makes both sides at least the target's; the covering side rounds up.
        let scale = Swift.max(Double(height) / Double(image.height), Double(width) / Double(image.width))
        let h = Swift.max(height, Int((Double(image.height) * scale).rounded())), w = Swift.max(width, Int((Double(image.width) * scale).rounded()))
        return try TF.centerCrop(try TF.resize(image, height: h, width: w), height: height, width: width)
    }
    public var description: String { "ResizeCrop(\(height)x\(width))" }
    public var specs: [TransformSpec]? { [TransformSpec("resize_crop", height: height, width: width)] }
}

/// Flips left-right with probability `p` (draws one uniform: flip if u < p).
public struct RandomHorizontalFlip: Transform {
    public var p: Double
    public init(p: Double = 0.5) { self.p = p }
    public func apply(_ image: Image, generator: Generator) throws -> Image {
        generator.nextDouble() < p ? TF.hflip(image) : image
    }
    public var description: String { "RandomHorizontalFlip(p: \(p))" }
}

/// Rotates by an angle drawn uniformly from [-degrees, degrees] (or [min, max]), nearest
/// neighbour, about the centre, `fill` outside (`transforms.RandomRotation` defaults).
public struct RandomRotation: Transform {
    public var minDegrees: Double, maxDegrees: Double, fill: Float
    public init(_ degrees: Double, fill: Float = 0) throws { try self.init(min: -abs(degrees), max: abs(degrees), fill: fill) }
    public init(min: Double, max: Double, fill: Float = 0) throws {
        guard min.isFinite, max.isFinite else { throw DataError("RandomRotation", "degrees must be finite, got [\(min), \(max)]") }
        guard min <= max else { throw DataError("RandomRotation", "min \(min) > max \(max)") }
        minDegrees = min; maxDegrees = max; self.fill = fill
    }
    public func apply(_ image: Image, generator: Generator) throws -> Image {
        try TF.rotate(image, angle: generator.uniform(minDegrees, maxDegrees), fill: fill)
    }
    public var description: String { "RandomRotation([\(minDegrees), \(maxDegrees)])" }
}

/// Pads by `padding` (constant `fill`), then crops a random `height x width` window
/// (`transforms.RandomCrop(size, padding, pad_if_needed, fill)`): top drawn first, then left.
public struct RandomCrop: Transform {
    public var height: Int, width: Int
    /// Left, top, right, bottom.
    public var padding: (Int, Int, Int, Int)
    public var padIfNeeded: Bool
    public var fill: Float
    public init(_ size: Int, padding: Int = 0, padIfNeeded: Bool = false, fill: Float = 0) throws {
        try self.init(height: size, width: size, padding: (padding, padding, padding, padding), padIfNeeded: padIfNeeded, fill: fill)
    }
    public init(height: Int, width: Int, padding: (Int, Int, Int, Int) = (0, 0, 0, 0), padIfNeeded: Bool = false, fill: Float = 0) throws {
        self.height = try checkedTransformSize(height, "height", "RandomCrop")
        self.width = try checkedTransformSize(width, "width", "RandomCrop")
        for p in [padding.0, padding.1, padding.2, padding.3] { _ = try checkedTransformSize(p, "padding", "RandomCrop", minimum: 0) }
        guard fill.isFinite else { throw DataError("RandomCrop", "fill must be finite, got \(fill)") }
        self.padding = padding; self.padIfNeeded = padIfNeeded; self.fill = fill
    }
    /// Draws (top, left) in the padded image as torchvision does, then cuts the window straight
    /// from the unpadded image (constant padding is the fill outside it): one copy, not two.
    public func apply(_ image: Image, generator: Generator) throws -> Image {
        var (l, t, r, b) = padding
        guard l >= 0, t >= 0, r >= 0, b >= 0 else { throw DataError("RandomCrop", "padding must be >= 0, got \(padding)") }
        var pw = image.width + l + r, ph = image.height + t + b
        if padIfNeeded && pw < width { let d = width - pw; l += d; r += d; pw += 2 * d }
        if padIfNeeded && ph < height { let d = height - ph; t += d; b += d; ph += 2 * d }
        guard ph >= height && pw >= width else {
            throw DataError("RandomCrop", "crop \(height)x\(width) is larger than the (padded) image \(ph)x\(pw)")
        }
        var top = 0, left = 0
        if !(ph == height && pw == width) {
            top = generator.nextInt(ph - height + 1)
            left = generator.nextInt(pw - width + 1)
        }
        if top == t && left == l && height == image.height && width == image.width { return image }
        return try TF.crop(image, top: top - t, left: left - l, height: height, width: width, fill: fill)
    }
    public var description: String { "RandomCrop(\(height)x\(width), padding: \(padding))" }
}

/// Random brightness, contrast, saturation and hue in a random order (`transforms.ColorJitter`).
/// `brightness: 0.2` draws a factor in [0.8, 1.2]; `hue: h` a shift in [-h, h].
public struct ColorJitter: Transform {
    public var brightness: ClosedRange<Double>?, contrast: ClosedRange<Double>?, saturation: ClosedRange<Double>?, hue: ClosedRange<Double>?

    public init(brightness: Double = 0, contrast: Double = 0, saturation: Double = 0, hue: Double = 0) throws {
        func range(_ v: Double, _ name: String) throws -> ClosedRange<Double>? {
            guard v >= 0 else { throw DataError("ColorJitter", "\(name) must be >= 0, got \(v)") }
            return v == 0 ? nil : max(0, 1 - v)...(1 + v)
        }
        self.brightness = try range(brightness, "brightness")
        self.contrast = try range(contrast, "contrast")
        self.saturation = try range(saturation, "saturation")
        guard hue >= 0 && hue <= 0.5 else { throw DataError("ColorJitter", "hue must be in [0, 0.5], got \(hue)") }
        self.hue = hue == 0 ? nil : -hue...hue
    }

    /// Parameters of one draw: the order of the four adjustments (0 brightness, 1 contrast,
    /// 2 saturation, 3 hue) and the factors (nil = off).
    public struct Parameters: Equatable {
        public var order: [Int]
        public var brightness: Float?, contrast: Float?, saturation: Float?, hue: Float?
        public init(order: [Int] = [0, 1, 2, 3], brightness: Float? = nil, contrast: Float? = nil, saturation: Float? = nil, hue: Float? = nil) {
            self.order = order; self.brightness = brightness; self.contrast = contrast; self.saturation = saturation; self.hue = hue
        }
    }

    public func parameters(_ g: Generator) -> Parameters {
        let order = g.permutation(4)
        func draw(_ r: ClosedRange<Double>?) -> Float? { r.map { Float(g.uniform($0.lowerBound, $0.upperBound)) } }
        let b = draw(brightness), c = draw(contrast), s = draw(saturation), h = draw(hue)
        return Parameters(order: order, brightness: b, contrast: c, saturation: s, hue: h)
    }

    /// Applies the adjustments of `p` in `p.order`.
    public static func apply(_ image: Image, _ p: Parameters) throws -> Image {
        var x = image   // copied on the first adjustment, then adjusted in place
        for k in p.order {
            switch k {
            case 0: if let f = p.brightness { try TF.adjustBrightness_(&x, factor: f) }
            case 1: if let f = p.contrast { try TF.adjustContrast_(&x, factor: f) }
            case 2: if let f = p.saturation { try TF.adjustSaturation_(&x, factor: f) }
            case 3: if let f = p.hue { try TF.adjustHue_(&x, factor: f) }
            default: throw DataError("ColorJitter", "order entry \(k) is not 0...3")
            }
        }
        return x
    }

    public func apply(_ image: Image, generator: Generator) throws -> Image {
        try ColorJitter.apply(image, parameters(generator))
    }
    public var description: String {
        "ColorJitter(brightness: \(brightness.map { "\($0)" } ?? "off"), contrast: \(contrast.map { "\($0)" } ?? "off"), saturation: \(saturation.map { "\($0)" } ?? "off"), hue: \(hue.map { "\($0)" } ?? "off"))"
    }
}

/// Crops a random area and aspect ratio, then resizes to `height x width`
/// (`transforms.RandomResizedCrop`, bilinear with antialias): up to 10 draws of
/// (area in `scale` of the image, log-uniform aspect ratio in `ratio`), else the central crop.
public struct RandomResizedCrop: Transform {
    public var height: Int, width: Int
    public var scale: ClosedRange<Double>, ratio: ClosedRange<Double>
    public init(_ size: Int, scale: ClosedRange<Double> = 0.08...1, ratio: ClosedRange<Double> = (3.0 / 4)...(4.0 / 3)) throws {
        try self.init(height: size, width: size, scale: scale, ratio: ratio)
    }
    public init(height: Int, width: Int, scale: ClosedRange<Double> = 0.08...1, ratio: ClosedRange<Double> = (3.0 / 4)...(4.0 / 3)) throws {
        self.height = try checkedTransformSize(height, "height", "RandomResizedCrop")
        self.width = try checkedTransformSize(width, "width", "RandomResizedCrop")
        guard scale.lowerBound > 0, scale.upperBound.isFinite, ratio.lowerBound > 0, ratio.upperBound.isFinite else {
            throw DataError("RandomResizedCrop", "scale and ratio must be positive and finite, got scale \(scale), ratio \(ratio)")
        }
        self.scale = scale; self.ratio = ratio
    }

    /// The crop window (top, left, height, width) torchvision's `get_params` would pick.
    public func window(height ih: Int, width iw: Int, generator g: Generator) -> (top: Int, left: Int, height: Int, width: Int) {
        let area = Double(ih * iw)
        let logLo = Foundation.log(ratio.lowerBound), logHi = Foundation.log(ratio.upperBound)
        for _ in 0..<10 {
            let target = area * g.uniform(scale.lowerBound, scale.upperBound)
            let aspect = Foundation.exp(g.uniform(logLo, logHi))
            // Compared as doubles first: a huge scale must not reach Int()'s range trap.
            let wd = (target * aspect).squareRoot().rounded(.toNearestOrEven)
            let hd = (target / aspect).squareRoot().rounded(.toNearestOrEven)
            if wd > 0 && wd <= Double(iw) && hd > 0 && hd <= Double(ih) {
                let w = Int(wd), h = Int(hd)
                let top = g.nextInt(ih - h + 1), left = g.nextInt(iw - w + 1)
                return (top, left, h, w)
            }
        }
        let inRatio = Double(iw) / Double(ih)
        var w = iw, h = ih
        if inRatio < ratio.lowerBound {
            h = Int((Double(w) / ratio.lowerBound).rounded(.toNearestOrEven))
        } else if inRatio > ratio.upperBound {
            w = Int((Double(h) * ratio.upperBound).rounded(.toNearestOrEven))
        }
        return ((ih - h) / 2, (iw - w) / 2, h, w)
    }

    public func apply(_ image: Image, generator: Generator) throws -> Image {
        guard scale.lowerBound > 0, ratio.lowerBound > 0 else { throw DataError("RandomResizedCrop", "scale and ratio must be positive") }
        let win = window(height: image.height, width: image.width, generator: generator)
        let c = try TF.crop(image, top: win.top, left: win.left, height: win.height, width: win.width)
        return try TF.resize(c, height: height, width: width)
    }
    public var description: String { "RandomResizedCrop(\(height)x\(width), scale: \(scale), ratio: \(ratio))" }
}

/// Converts to grey (keeping the channel count) with probability `p` (`transforms.RandomGrayscale`).
public struct RandomGrayscale: Transform {
    public var p: Double
    public init(p: Double = 0.1) { self.p = p }
    public func apply(_ image: Image, generator: Generator) throws -> Image {
        guard generator.nextDouble() < p, image.channels == 3 else { return image }
        return try TF.rgbToGrayscale(image, outputChannels: 3)
    }
    public var description: String { "RandomGrayscale(p: \(p))" }
}

/// Applies `transform` with probability `p` (`transforms.RandomApply`).
public struct RandomApply: Transform {
    public var transform: Transform, p: Double
    public init(_ transform: Transform, p: Double = 0.5) { self.transform = transform; self.p = p }
    public func apply(_ image: Image, generator: Generator) throws -> Image {
        generator.nextDouble() < p ? try transform.apply(image, generator: generator) : image
    }
    public var description: String { "RandomApply(\(transform), p: \(p))" }
}

/// Scales pixel values to [0, 1] (`transforms.ToTensor`'s scaling).
public struct ToFloat: Transform {
    public init() {}
    public func apply(_ image: Image, generator: Generator) throws -> Image { TF.toFloat(image) }
    public var description: String { "ToFloat()" }
    public var specs: [TransformSpec]? { [TransformSpec("to_float")] }
}

/// `(x - mean) / std` per channel, on [0, 1] values (`transforms.Normalize`).
public struct Normalize: Transform {
    public var mean: [Float], std: [Float]
    public init(mean: [Float], std: [Float]) { self.mean = mean; self.std = std }
    public func apply(_ image: Image, generator: Generator) throws -> Image { try TF.normalize(image, mean: mean, std: std) }
    public var description: String { "Normalize(mean: \(mean), std: \(std))" }
    public var specs: [TransformSpec]? { [TransformSpec("normalize", mean: mean, std: std)] }
}

/// Applies a closure (for transforms written elsewhere). The loader calls transforms from
/// several threads at once: the closure must be thread-safe (a Lua callback is not; run such a
/// transform with `DataLoader(workers: 1, prefetch: 0)` or behind a lock).
public struct Lambda: Transform {
    public let name: String
    public let body: (Image, Generator) throws -> Image
    public init(_ name: String, _ body: @escaping (Image, Generator) throws -> Image) { self.name = name; self.body = body }
    public func apply(_ image: Image, generator: Generator) throws -> Image { try body(image, generator) }
    public var description: String { "Lambda(\(name))" }
}

/// Several independently augmented views of one image, for self-supervised pretext work
/// (e.g. SimCLR's two views). View `v` draws from its own stream derived from the sample's
/// generator, so views differ but each is reproducible.
public struct MultiView: CustomStringConvertible {
    public var views: [Transform]
    public init(_ views: [Transform]) { self.views = views }
    /// The same transform twice (two views).
    public init(twice t: Transform) { self.views = [t, t] }
    public func apply(_ image: Image, generator: Generator) throws -> [Image] {
        let base = generator.nextUInt64()
        return try views.enumerated().map { v, t in
            try t.apply(image, generator: Generator.derived(seed: base, UInt64(v)))
        }
    }
    public var description: String { "MultiView(" + views.map(\.description).joined(separator: ", ") + ")" }
}

extension Compose {
    /// The paper's train transform at `size` (PAPER.md): Resize(size), RandomHorizontalFlip,
    /// RandomRotation(10), RandomCrop(size, padding 4), ColorJitter(0.2, 0.2, 0.2), ToFloat.
    public static func paperTrain(size: Int = 96) throws -> Compose {
        Compose([try Resize(size), RandomHorizontalFlip(), try RandomRotation(10), try RandomCrop(size, padding: 4),
                 try ColorJitter(brightness: 0.2, contrast: 0.2, saturation: 0.2), ToFloat()])
    }
    /// SimCLR-style augmentation for two-view pretext training: RandomResizedCrop(size, 0.2...1),
    /// RandomHorizontalFlip, RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p 0.8),
    /// RandomGrayscale(0.2), ToFloat. Use with `MultiView(twice:)`.
    public static func contrastive(size: Int = 96) throws -> Compose {
        Compose([try RandomResizedCrop(size, scale: 0.2...1), RandomHorizontalFlip(),
                 RandomApply(try ColorJitter(brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1), p: 0.8),
                 RandomGrayscale(p: 0.2), ToFloat()])
    }
    /// The paper's test transform: Resize(size), ToFloat.
    public static func paperTest(size: Int = 96) throws -> Compose { try Compose([Resize(size), ToFloat()]) }
}
