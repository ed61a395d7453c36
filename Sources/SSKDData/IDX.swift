// IDX files (MNIST, Fashion-MNIST), gzip-compressed or raw.
//
//   images: magic 0x00000803, then big-endian N, H, W, then N*H*W uint8 pixels row-major
//   labels: magic 0x00000801, then big-endian N, then N uint8 labels
//
// Default paths are the Debian package dataset-fashion-mnist.

/// A grayscale IDX image dataset (1 x H x W) with its labels.
public final class IDXDataset: Dataset {
    public static let fashionMNISTClassNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    public static let mnistClassNames = (0...9).map(String.init)
    /// Where Debian's dataset-fashion-mnist puts the files.
    public static let debianFashionMNISTRoot = "/usr/share/datasets/fashion-mnist"

    public let name: String
    public let count: Int
    public let classNames: [String]
    public let imageShape: ImageShape?
    private let pixels: FileBytes
    private let labelsBytes: [UInt8]
    private let headerBytes = 16

    public var isLabeled: Bool { true }

    /// Reads an images file and a labels file (gzip or raw); `classNames` sets the class count.
    public init(images imagesPath: String, labels labelsPath: String, classNames: [String], name: String? = nil) throws {
        let img = try FileBytes(gzipOrRaw: imagesPath)
        guard img.count >= 16 else { throw DataError(imagesPath, "file too short for an IDX image header (\(img.count) bytes)") }
        let magic = img.bigEndianUInt32(at: 0)
        guard magic == 0x0000_0803 else {
            throw DataError(imagesPath, "bad IDX magic 0x\(String(magic, radix: 16)) (expected 0x803: uint8, 3 dimensions)")
        }
        let n = Int(img.bigEndianUInt32(at: 4)), h = Int(img.bigEndianUInt32(at: 8)), w = Int(img.bigEndianUInt32(at: 12))
        guard h > 0 && w > 0 && h <= 1 << 16 && w <= 1 << 16 else { throw DataError(imagesPath, "invalid image size \(h)x\(w)") }
        let (total, overflow) = n.multipliedReportingOverflow(by: h * w)
        guard !overflow && img.count == 16 + total else {
            throw DataError(imagesPath, "\(img.count - 16) pixel bytes for \(n) images of \(h)x\(w) (expected \(overflow ? "too many" : String(total))); the file is truncated or corrupt")
        }
        let lab = try FileBytes(gzipOrRaw: labelsPath)
        guard lab.count >= 8 else { throw DataError(labelsPath, "file too short for an IDX label header (\(lab.count) bytes)") }
        let lmagic = lab.bigEndianUInt32(at: 0)
        guard lmagic == 0x0000_0801 else {
            throw DataError(labelsPath, "bad IDX magic 0x\(String(lmagic, radix: 16)) (expected 0x801: uint8, 1 dimension)")
        }
        let ln = Int(lab.bigEndianUInt32(at: 4))
        guard ln == n else { throw DataError(labelsPath, "\(ln) labels for \(n) images in \(imagesPath)") }
        guard lab.count == 8 + n else {
            throw DataError(labelsPath, "\(lab.count - 8) label bytes for \(n) labels; the file is truncated or corrupt")
        }
        var labels = [UInt8](repeating: 0, count: n)
        for i in 0..<n {
            let y = lab[8 + i]
            guard Int(y) < classNames.count else {
                throw DataError(labelsPath, "label \(y) of image \(i) is outside 0..<\(classNames.count)")
            }
            labels[i] = y
        }
        self.pixels = img
        self.labelsBytes = labels
        self.count = n
        self.classNames = classNames
        self.imageShape = ImageShape(channels: 1, height: h, width: w)
        self.name = name ?? "idx \(imagesPath)"
    }

    /// Fashion-MNIST `train` (60000) or `test` (10000) from `root` (default: the Debian package),
    /// trying `<prefix>-images-idx3-ubyte.gz` then the uncompressed name.
    public static func fashionMNIST(root: String = debianFashionMNISTRoot, train: Bool) throws -> IDXDataset {
        try standard(root: root, train: train, classNames: fashionMNISTClassNames, name: "fashion-mnist")
    }

    /// MNIST `train` or `test` from `root` (same file names as Fashion-MNIST).
    public static func mnist(root: String, train: Bool) throws -> IDXDataset {
        try standard(root: root, train: train, classNames: mnistClassNames, name: "mnist")
    }

    private static func standard(root: String, train: Bool, classNames: [String], name: String) throws -> IDXDataset {
        let prefix = train ? "train" : "t10k"
        func find(_ base: String) throws -> String {
            for cand in [base + ".gz", base] where fileExists(joinPath(root, cand)) { return joinPath(root, cand) }
            throw DataError(joinPath(root, base + ".gz"), "IDX file not found (nor uncompressed)")
        }
        return try IDXDataset(images: try find("\(prefix)-images-idx3-ubyte"), labels: try find("\(prefix)-labels-idx1-ubyte"),
                              classNames: classNames, name: "\(name) \(train ? "train" : "test")")
    }

    public func image(at index: Int) throws -> ByteImage {
        try checkIndex(index)
        let s = imageShape!
        let n = s.height * s.width
        let px = Array(UnsafeBufferPointer(start: pixels.bytes + headerBytes + index * n, count: n))
        return try ByteImage(shape: s, pixels: px)
    }

    public func label(at index: Int) throws -> Int? {
        try checkIndex(index)
        return Int(labelsBytes[index])
    }
}
