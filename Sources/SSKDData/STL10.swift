// STL-10 binary distribution (stl10_binary/).
//
//   {train,test,unlabeled}_X.bin  N x [3, 96, 96] uint8; planes R, G, B; each plane COLUMN-major:
//                                 pixel (row r, col c) of a plane is byte c*96 + r
//   {train,test}_y.bin            N uint8 labels 1...10 (we return 0...9)
//   class_names.txt               one name a line
//   fold_indices.txt              10 lines of 1000 zero-based indices into train
//
// Image files are memory-mapped: the 2.76 GB unlabeled split is never read into RAM.

/// The STL-10 binary dataset: `train` (5000), `test` (8000) or `unlabeled` (100000).
public final class STL10: Dataset {
    public enum Split: String, CaseIterable, Sendable { case train, test, unlabeled }

    public static let side = 96
    public static let imageBytes = 3 * 96 * 96  // 27648
    /// The names shipped in class_names.txt, used when the file is absent.
    public static let defaultClassNames = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]

    public let root: String
    public let split: Split
    public let classNames: [String]
    public let count: Int
    private let images: FileBytes
    private let labelBytes: [UInt8]?

    public var name: String { "stl10 \(split.rawValue)" }
    public var imageShape: ImageShape? { ImageShape(channels: 3, height: 96, width: 96) }
    public var isLabeled: Bool { labelBytes != nil }

    /// Opens `root/<split>_X.bin` (memory-mapped) and, for train/test, `root/<split>_y.bin`.
    public init(root: String, split: Split) throws {
        self.root = root
        self.split = split
        let xPath = joinPath(root, "\(split.rawValue)_X.bin")
        guard fileExists(xPath) else { throw DataError(xPath, "STL-10 image file not found") }
        let images = try FileBytes(mapping: xPath)
        guard images.count % STL10.imageBytes == 0 else {
            throw DataError(xPath, "size \(images.count) bytes is not a multiple of \(STL10.imageBytes) (3x96x96); the file is truncated or not STL-10")
        }
        guard images.count > 0 else { throw DataError(xPath, "the file is empty") }
        self.images = images
        self.count = images.count / STL10.imageBytes

        let namesPath = joinPath(root, "class_names.txt")
        if fileExists(namesPath) {
            let names = try readLines(namesPath)
            guard names.count == 10 else { throw DataError(namesPath, "expected 10 class names, found \(names.count)") }
            self.classNames = names
        } else {
            self.classNames = STL10.defaultClassNames
        }

        if split == .unlabeled {
            self.labelBytes = nil
        } else {
            let yPath = joinPath(root, "\(split.rawValue)_y.bin")
            guard fileExists(yPath) else { throw DataError(yPath, "STL-10 label file not found") }
            let y = try FileBytes(reading: yPath)
            guard y.count == count else {
                throw DataError(yPath, "\(y.count) labels for \(count) images in \(xPath)")
            }
            var labels = [UInt8](repeating: 0, count: count)
            for i in 0..<count {
                let v = y[i]
                guard v >= 1 && v <= 10 else { throw DataError(yPath, "label \(v) of image \(i) is outside 1...10") }
                labels[i] = v - 1
            }
            self.labelBytes = labels
        }
    }

    public func image(at index: Int) throws -> ByteImage {
        try checkIndex(index)
        let n = STL10.side, plane = n * n
        let src = images.bytes + index * STL10.imageBytes
        let px = [UInt8](unsafeUninitializedCapacity: STL10.imageBytes) { out, k in
            // Transpose each column-major plane to row-major.
            for c in 0..<3 {
                let s = src + c * plane
                let o = out.baseAddress! + c * plane
                for col in 0..<n {
                    let column = s + col * n
                    for row in 0..<n { o[row * n + col] = column[row] }
                }
            }
            k = STL10.imageBytes
        }
        return try ByteImage(shape: ImageShape(channels: 3, height: n, width: n), pixels: px)
    }

    public func label(at index: Int) throws -> Int? {
        try checkIndex(index)
        return labelBytes.map { Int($0[index]) }
    }

    /// The 10 standard folds of `fold_indices.txt` (each 1000 zero-based train indices).
    public static func folds(root: String) throws -> [[Int]] {
        let path = joinPath(root, "fold_indices.txt")
        guard fileExists(path) else { throw DataError(path, "STL-10 fold file not found") }
        let lines = try readLines(path)
        guard lines.count == 10 else { throw DataError(path, "expected 10 folds, found \(lines.count) lines") }
        return try lines.enumerated().map { (k, line) in
            try line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map { tok -> Int in
                guard let v = Int(tok), v >= 0 else { throw DataError(path, "fold \(k + 1): '\(tok)' is not a zero-based index") }
                return v
            }
        }
    }

    /// Train-split fold `k` (0...9) as a subset of this (train) dataset.
    public func fold(_ k: Int) throws -> Subset {
        guard split == .train else { throw DataError(name, "folds index the train split") }
        let folds = try STL10.folds(root: root)
        guard k >= 0 && k < folds.count else { throw DataError(name, "fold \(k) out of range 0...9") }
        for i in folds[k] where i >= count {
            throw DataError(joinPath(root, "fold_indices.txt"), "fold \(k + 1): index \(i) out of range for \(count) train images")
        }
        return try Subset(self, indices: folds[k], name: "\(name) fold \(k)")
    }
}
