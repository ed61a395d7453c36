// Images as they travel through SSKDData.
//
//   ByteImage  uint8  [C, H, W] row-major planes (what datasets return)
//   Image      Float  [C, H, W] row-major planes (what transforms work on), with the value
//              range it is in: 255 (raw pixel values) or 1 (scaled to [0, 1] like ToTensor)
//
import SSKDTensor

// C is 1 (gray), 3 (RGB) or 4 (RGBA).

/// Channels, height and width of an image.
public struct ImageShape: Equatable, Hashable, CustomStringConvertible, Sendable {
    public var channels: Int
    public var height: Int
    public var width: Int
    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }
    /// Number of values (`channels * height * width`).
    public var count: Int { channels * height * width }

    /// `count`, checked before a buffer of that many `elementSize`-byte values is allocated:
    /// every dimension positive, no overflow, and memory for it (`MemoryLimit`, the same gate as
    /// tensors). `op` names the transform or reader in the error.
    public func checkedCount(op: String, elementSize: Int = MemoryLayout<Float>.stride) throws -> Int {
        guard channels >= 1, height >= 1, width >= 1 else { throw DataError(op, "invalid image shape \(self)") }
        let n = try MemoryLimit.checkedCount([channels, height, width], op: op, what: "image shape")
        try MemoryLimit.check(count: n, elementSize: elementSize, op: op)
        return n
    }
    public var description: String { "\(channels)x\(height)x\(width)" }

    /// `"3x96x96"` (what `--input` takes); nil unless three positive integers.
    public init?(parsing s: String) {
        let v = s.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard v.count == 3, let c = v[0], let h = v[1], let w = v[2], c > 0, h > 0, w > 0 else { return nil }
        self.init(channels: c, height: h, width: w)
    }
}

/// An 8-bit image in CHW layout: plane `c` holds `height * width` bytes, row by row.
public struct ByteImage: Equatable, Sendable {
    public var shape: ImageShape
    /// `shape.count` bytes, channel planes one after another, each row-major.
    public var pixels: [UInt8]

    public init(shape: ImageShape, pixels: [UInt8]) throws {
        guard shape.channels >= 1, shape.height >= 1, shape.width >= 1 else {
            throw DataError("ByteImage", "invalid image shape \(shape)")
        }
        guard pixels.count == shape.count else {
            throw DataError("ByteImage", "\(pixels.count) bytes for an image of shape \(shape) (expected \(shape.count))")
        }
        self.shape = shape
        self.pixels = pixels
    }

    /// Builds an image from interleaved HWC bytes (as PNG/JPEG decoders produce them).
    public init(interleaved hwc: UnsafeBufferPointer<UInt8>, height: Int, width: Int, channels: Int) throws {
        let shape = ImageShape(channels: channels, height: height, width: width)
        guard try shape.checkedCount(op: "ByteImage", elementSize: 1) == hwc.count else {
            throw DataError("ByteImage", "\(hwc.count) interleaved bytes for an image of shape \(shape)")
        }
        let plane = height * width
        self.shape = shape
        self.pixels = [UInt8](unsafeUninitializedCapacity: shape.count) { out, n in
            for p in 0..<plane {
                for c in 0..<channels { out[c * plane + p] = hwc[p * channels + c] }
            }
            n = shape.count
        }
    }

    /// The pixels interleaved HWC (for writing image files).
    public var interleaved: [UInt8] {
        let plane = shape.height * shape.width, ch = shape.channels
        var out = [UInt8](repeating: 0, count: shape.count)
        for p in 0..<plane { for c in 0..<ch { out[p * ch + c] = pixels[c * plane + p] } }
        return out
    }

    /// Converts to `channels` channels the way PIL's `Image.convert` does: gray -> RGB repeats the
    /// plane; RGB(A) -> gray uses ITU-R 601-2 luma `(19595 R + 38470 G + 7471 B + 32768) >> 16`;
    /// RGBA -> RGB drops alpha; gray/RGB -> RGBA adds an opaque alpha plane.
    public func converted(toChannels channels: Int) throws -> ByteImage {
        let src = shape.channels
        if src == channels { return self }
        guard [1, 3, 4].contains(channels), [1, 3, 4].contains(src) else {
            throw DataError("ByteImage.converted", "cannot convert \(src) channels to \(channels)")
        }
        let plane = shape.height * shape.width
        _ = try ImageShape(channels: channels, height: shape.height, width: shape.width).checkedCount(op: "ByteImage.converted", elementSize: 1)
        var out = [UInt8](repeating: 255, count: channels * plane)
        pixels.withUnsafeBufferPointer { p in
            if channels == 1 {
                for i in 0..<plane {
                    let r = UInt32(p[i]), g = UInt32(p[plane + i]), b = UInt32(p[2 * plane + i])
                    out[i] = UInt8((19595 * r + 38470 * g + 7471 * b + 32768) >> 16)
                }
            } else if src == 1 {
                for c in 0..<3 { for i in 0..<plane { out[c * plane + i] = p[i] } }
            } else {
                for i in 0..<(3 * plane) { out[i] = p[i] }
            }
        }
        return try ByteImage(shape: ImageShape(channels: channels, height: shape.height, width: shape.width), pixels: out)
    }
}

/// A float image in CHW layout, the value type of the transform pipeline.
///
/// `range` says what full intensity is: 255 for raw pixel values (straight from a `ByteImage`),
/// 1 after `ToFloat`/`Normalize`. Colour transforms clamp to `[0, range]`, like torchvision's
/// `_max_value` (255 for uint8 tensors, 1 for float tensors).
public struct Image: Equatable, Sendable {
    public var shape: ImageShape
    public var pixels: [Float]
    public var range: Float

    public init(shape: ImageShape, pixels: [Float], range: Float = 1) throws {
        guard shape.channels >= 1, shape.height >= 1, shape.width >= 1 else {
            throw DataError("Image", "invalid image shape \(shape)")
        }
        guard pixels.count == shape.count else {
            throw DataError("Image", "\(pixels.count) values for an image of shape \(shape) (expected \(shape.count))")
        }
        self.shape = shape
        self.pixels = pixels
        self.range = range
    }

    /// Unchecked initialiser for kernels that build pixels of the right size.
    @inline(__always) init(unchecked shape: ImageShape, _ pixels: [Float], range: Float) {
        self.shape = shape
        self.pixels = pixels
        self.range = range
    }

    /// The byte image as floats in 0...255 (`range` 255).
    public init(_ bytes: ByteImage) {
        self.shape = bytes.shape
        let n = bytes.pixels.count
        self.pixels = [Float](unsafeUninitializedCapacity: n) { dst, count in
            bytes.pixels.withUnsafeBufferPointer { src in
                for i in 0..<n { dst[i] = Float(src[i]) }
            }
            count = n
        }
        self.range = 255
    }

    public var channels: Int { shape.channels }
    public var height: Int { shape.height }
    public var width: Int { shape.width }
}

/// An error from reading data or applying a transform: what failed (a file path, a dataset or a
/// transform name) and why.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let what: String
    public let message: String
    public init(_ what: String, _ message: String) {
        self.what = what
        self.message = message
    }
    public var description: String { "\(what): \(message)" }
}
