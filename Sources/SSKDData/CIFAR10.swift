// CIFAR-10 binary batches (cifar-10-batches-bin/).
//
//   data_batch_1.bin ... data_batch_5.bin, test_batch.bin: records of 1 label byte (0...9) and
//   3072 pixel bytes [3, 32, 32] (planes R, G, B, each row-major)
//   batches.meta.txt: class names, one a line

/// CIFAR-10 binary: `train` (the five data batches, 50000) or `test` (10000).
public final class CIFAR10: Dataset {
    public static let recordBytes = 1 + 3072
    public static let defaultClassNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    public let name: String
    public let classNames: [String]
    public let count: Int
    private let files: [FileBytes]
    private let perFile: [Int]
    private let labels: [UInt8]

    public var imageShape: ImageShape? { ImageShape(channels: 3, height: 32, width: 32) }
    public var isLabeled: Bool { true }

    /// Opens the train batches or the test batch under `root`.
    public convenience init(root: String, train: Bool) throws {
        let names = train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
        try self.init(batchFiles: names.map { joinPath(root, $0) }, metaFile: joinPath(root, "batches.meta.txt"),
                      name: "cifar10 \(train ? "train" : "test")")
    }

    /// Opens the given batch files (memory-mapped) in order.
    public init(batchFiles: [String], metaFile: String? = nil, name: String = "cifar10") throws {
        guard !batchFiles.isEmpty else { throw DataError(name, "no batch files") }
        var classNames = CIFAR10.defaultClassNames
        if let meta = metaFile, fileExists(meta) {
            let lines = try readLines(meta).filter { !$0.isEmpty }
            guard lines.count == 10 else { throw DataError(meta, "expected 10 class names, found \(lines.count)") }
            classNames = lines
        }
        var files = [FileBytes](), perFile = [Int](), labels = [UInt8]()
        for path in batchFiles {
            guard fileExists(path) else { throw DataError(path, "CIFAR-10 batch file not found") }
            let f = try FileBytes(mapping: path)
            guard f.count > 0, f.count % CIFAR10.recordBytes == 0 else {
                throw DataError(path, "size \(f.count) bytes is not a positive multiple of \(CIFAR10.recordBytes) (1 label + 3x32x32); the file is truncated or not CIFAR-10")
            }
            let n = f.count / CIFAR10.recordBytes
            for i in 0..<n {
                let y = f[i * CIFAR10.recordBytes]
                guard y < 10 else { throw DataError(path, "label \(y) of record \(i) is outside 0...9") }
                labels.append(y)
            }
            files.append(f)
            perFile.append(n)
        }
        self.files = files
        self.perFile = perFile
        self.labels = labels
        self.count = labels.count
        self.classNames = classNames
        self.name = name
    }

    public func image(at index: Int) throws -> ByteImage {
        try checkIndex(index)
        var i = index, f = 0
        while i >= perFile[f] { i -= perFile[f]; f += 1 }
        let src = files[f].bytes + i * CIFAR10.recordBytes + 1
        return try ByteImage(shape: imageShape!, pixels: Array(UnsafeBufferPointer(start: src, count: 3072)))
    }

    public func label(at index: Int) throws -> Int? {
        try checkIndex(index)
        return Int(labels[index])
    }
}
