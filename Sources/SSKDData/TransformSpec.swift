// Deterministic transforms as data: a run directory's model.json records its eval transform as
// a list of these, and `sskd predict` builds the same transform from it.
//
//   [{"op": "resize", "size": 96, "antialias": true}, {"op": "center_crop", "height": 96, "width": 96},
//    {"op": "normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}]

import Foundation

/// One deterministic transform as data. `op` is the `transforms.*` name: `resize` (`size`, the
/// smaller edge, or `height` and `width`; `antialias`), `center_crop` (`height`, `width`),
/// `resize_crop` (`height`, `width`), `to_float`, `normalize` (`mean`, `std`).
public struct TransformSpec: Codable, Equatable, Sendable {
    public var op: String
    public var size: Int?
    public var height: Int?
    public var width: Int?
    public var antialias: Bool?
    public var mean: [Float]?
    public var std: [Float]?

    public init(_ op: String, size: Int? = nil, height: Int? = nil, width: Int? = nil, antialias: Bool? = nil,
                mean: [Float]? = nil, std: [Float]? = nil) {
        self.op = op; self.size = size; self.height = height; self.width = width
        self.antialias = antialias; self.mean = mean; self.std = std
    }

    /// The transform this spec describes; a missing or bad field is an error naming the op.
    public func make() throws -> Transform {
        func need<T>(_ v: T?, _ field: String) throws -> T {
            guard let v else { throw DataError("transform '\(op)'", "field '\(field)' is required") }
            return v
        }
        switch op {
        case "resize":
            if let size { return try Resize(size, antialias: antialias ?? true) }
            return try Resize(height: try need(height, "height"), width: try need(width, "width"), antialias: antialias ?? true)
        case "center_crop": return try CenterCrop(height: try need(height, "height"), width: try need(width, "width"))
        case "resize_crop": return try ResizeCrop(height: try need(height, "height"), width: try need(width, "width"))
        case "to_float": return ToFloat()
        case "normalize":
            let m = try need(mean, "mean"), s = try need(std, "std")
            guard !m.isEmpty, m.count == s.count, s.allSatisfy({ $0 != 0 && $0.isFinite }), m.allSatisfy(\.isFinite) else {
                throw DataError("transform 'normalize'", "mean and std need the same non-zero length, finite values and no zero std (got \(m.count) and \(s.count) values)")
            }
            return Normalize(mean: m, std: s)
        default:
            throw DataError("transform '\(op)'", "unknown op (known: resize, center_crop, resize_crop, to_float, normalize)")
        }
    }

    /// The transforms of `specs` in order, as one.
    public static func make(_ specs: [TransformSpec]) throws -> Transform {
        specs.count == 1 ? try specs[0].make() : Compose(try specs.map { try $0.make() })
    }
}
