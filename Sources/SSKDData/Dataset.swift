// The dataset protocol and views over datasets: subsets, unlabeled views, stratified splits.
//
// A dataset is random access: `image(at:)` returns a ByteImage [C, H, W], `label(at:)` a class
// index in 0..<classNames.count (nil when unlabeled). Implementations are immutable after
// init, so reads are safe from any thread (the loader reads from a worker pool).

import SSKDTensor

/// A random-access image dataset.
public protocol Dataset: AnyObject {
    /// A short name for messages (`"stl10 train"`, `"folder /data/pets"`).
    var name: String { get }
    /// Number of images.
    var count: Int { get }
    /// Class names in label order (empty for a dataset that was never labelled).
    var classNames: [String] { get }
    /// The shape every image has, or nil when images differ in size (image folders).
    var imageShape: ImageShape? { get }
    /// Whether `label(at:)` returns labels.
    var isLabeled: Bool { get }
    /// Image `index` as uint8 CHW.
    func image(at index: Int) throws -> ByteImage
    /// Class index of image `index` in `0..<classNames.count`, or nil for unlabeled data.
    func label(at index: Int) throws -> Int?
}

extension Dataset {
    /// Number of classes.
    public var classCount: Int { classNames.count }

    @inline(__always) func checkIndex(_ index: Int) throws {
        guard index >= 0 && index < count else {
            throw DataError(name, "index \(index) out of range for \(count) images")
        }
    }

    /// All labels in index order (throws for an unlabeled dataset).
    public func labels() throws -> [Int] {
        guard isLabeled else { throw DataError(name, "the dataset is unlabeled") }
        var out = [Int](); out.reserveCapacity(count)
        for i in 0..<count {
            guard let y = try label(at: i) else { throw DataError(name, "image \(i) has no label") }
            out.append(y)
        }
        return out
    }

    /// Number of images per class.
    public func classCounts() throws -> [Int] {
        var c = [Int](repeating: 0, count: classCount)
        for y in try labels() { c[y] += 1 }
        return c
    }

    /// The images at `indices`, in that order.
    public func subset(_ indices: [Int], name: String? = nil) throws -> Subset {
        try Subset(self, indices: indices, name: name)
    }

    /// The same images without labels (for unlabeled distillation or self-supervised work).
    public func unlabeled() -> UnlabeledView { UnlabeledView(self) }
}

/// The images of a base dataset at given indices.
///
/// A subset of a subset is flattened: `base` is never itself a `Subset`, so `indices` always
/// index the underlying dataset (what an indices file must hold to name the same images).
public final class Subset: Dataset {
    public let base: Dataset
    /// Indices into `base`.
    public let indices: [Int]
    public let name: String

    public init(_ base: Dataset, indices: [Int], name: String? = nil) throws {
        for i in indices where i < 0 || i >= base.count {
            throw DataError(base.name, "subset index \(i) out of range for \(base.count) images")
        }
        if let inner = base as? Subset {
            self.base = inner.base
            self.indices = indices.map { inner.indices[$0] }
        } else {
            self.base = base
            self.indices = indices
        }
        self.name = name ?? "\(base.name) subset(\(indices.count))"
    }

    public var count: Int { indices.count }
    public var classNames: [String] { base.classNames }
    public var imageShape: ImageShape? { base.imageShape }
    public var isLabeled: Bool { base.isLabeled }
    public func image(at index: Int) throws -> ByteImage {
        try checkIndex(index)
        return try base.image(at: indices[index])
    }
    public func label(at index: Int) throws -> Int? {
        try checkIndex(index)
        return try base.label(at: indices[index])
    }
}

/// A dataset seen without its labels. Class names are kept for reference.
public final class UnlabeledView: Dataset {
    public let base: Dataset
    public init(_ base: Dataset) { self.base = base }
    public var name: String { "\(base.name) (unlabeled)" }
    public var count: Int { base.count }
    public var classNames: [String] { base.classNames }
    public var imageShape: ImageShape? { base.imageShape }
    public var isLabeled: Bool { false }
    public func image(at index: Int) throws -> ByteImage { try base.image(at: index) }
    public func label(at index: Int) throws -> Int? { try checkIndex(index); return nil }
}

/// Several datasets of one kind end to end (for example labelled train plus unlabeled images).
public final class ConcatDataset: Dataset {
    public let parts: [Dataset]
    private let offsets: [Int]
    public let name: String
    public init(_ parts: [Dataset]) throws {
        guard let first = parts.first else { throw DataError("concat", "no datasets to concatenate") }
        var off = [0]
        for p in parts {
            guard p.imageShape == first.imageShape || first.imageShape == nil || p.imageShape == nil else {
                throw DataError("concat", "\(p.name) has images of shape \(p.imageShape.map { "\($0)" } ?? "varying"), \(first.name) has \(first.imageShape.map { "\($0)" } ?? "varying")")
            }
            off.append(off.last! + p.count)
        }
        self.parts = parts
        self.offsets = off
        self.name = parts.map(\.name).joined(separator: " + ")
    }
    public var count: Int { offsets.last! }
    public var classNames: [String] { parts.first(where: { $0.isLabeled })?.classNames ?? parts[0].classNames }
    public var imageShape: ImageShape? {
        let s = parts[0].imageShape
        return parts.allSatisfy { $0.imageShape == s } ? s : nil
    }
    public var isLabeled: Bool { parts.allSatisfy(\.isLabeled) }
    private func locate(_ index: Int) throws -> (Dataset, Int) {
        try checkIndex(index)
        var lo = 0, hi = parts.count - 1
        while lo < hi {                           // last part whose offset <= index
            let mid = (lo + hi + 1) / 2
            if offsets[mid] <= index { lo = mid } else { hi = mid - 1 }
        }
        return (parts[lo], index - offsets[lo])
    }
    public func image(at index: Int) throws -> ByteImage { let (d, i) = try locate(index); return try d.image(at: i) }
    public func label(at index: Int) throws -> Int? { let (d, i) = try locate(index); return try d.label(at: i) }
}

// MARK: - Stratified splits

/// A labelled subset, a validation split disjoint from it, and everything else.
public struct StratifiedSplit {
    /// `samples` images, spread over classes as evenly as the class sizes allow.
    public let train: Subset
    /// `validation` images from outside `train`, stratified the same way (may be empty).
    public let validation: Subset
    /// The labelled images in neither `train` nor `validation` (e.g. to pre-train a teacher).
    public let rest: Subset
}

/// Splits `total` items over classes with `available[c]` items each as evenly as possible:
/// every class gets `total / K` (or all it has), the shortfall goes to classes with room, and a
/// remainder smaller than the number of classes with room goes to classes picked by `generator`.
func evenQuotas(total: Int, available: [Int], generator: Generator) -> [Int] {
    var quota = [Int](repeating: 0, count: available.count)
    var left = total
    while left > 0 {
        let open = available.indices.filter { quota[$0] < available[$0] }
        if open.isEmpty { break }
        let share = left / open.count
        if share == 0 {
            // Fewer items left than open classes: a seeded choice of which classes get one more.
            let order = generator.permutation(open.count)
            for k in 0..<left { quota[open[order[k]]] += 1 }
            left = 0
            break
        }
        for c in open {
            let add = min(share, available[c] - quota[c])
            quota[c] += add
            left -= add
        }
    }
    return quota
}

extension Dataset {
    /// A seeded stratified split: exactly `samples` images as evenly spread over classes as
    /// possible (nil = all images not used for validation), then `validation` images from the
    /// remaining ones, stratified the same way; `rest` holds the images in neither.
    /// Each part's indices are in ascending order of the base dataset.
    public func stratifiedSplit(samples: Int?, validation: Int = 0, seed: UInt64) throws -> StratifiedSplit {
        let ys = try labels()
        let k = classCount
        guard k > 0 else { throw DataError(name, "a stratified split needs class names") }
        guard validation >= 0 else { throw DataError(name, "validation size must be >= 0, got \(validation)") }
        let n = samples ?? (count - validation)
        guard n >= 0 else { throw DataError(name, "samples must be >= 0, got \(n)") }
        guard n + validation <= count else {
            throw DataError(name, "samples \(n) + validation \(validation) exceed the \(count) labelled images")
        }
        var byClass = [[Int]](repeating: [], count: k)
        for (i, y) in ys.enumerated() {
            guard y >= 0 && y < k else { throw DataError(name, "label \(y) of image \(i) out of range 0..<\(k)") }
            byClass[y].append(i)
        }
        // Shuffle within each class from its own stream: changing one class's size does not
        // reshuffle the others.
        for c in 0..<k {
            let g = Generator.derived(seed: seed, 0x5354_5241_5446, UInt64(c))
            let p = g.permutation(byClass[c].count)
            byClass[c] = p.map { byClass[c][$0] }
        }
        let gq = Generator.derived(seed: seed, 0x5155_4F54_41)
        let trainQuota = evenQuotas(total: n, available: byClass.map(\.count), generator: gq)
        let valQuota = evenQuotas(total: validation, available: zip(byClass, trainQuota).map { $0.count - $1 }, generator: gq)
        var tr = [Int](), va = [Int](), rest = [Int]()
        for c in 0..<k {
            let idx = byClass[c]
            tr += idx[0..<trainQuota[c]]
            va += idx[trainQuota[c]..<(trainQuota[c] + valQuota[c])]
            rest += idx[(trainQuota[c] + valQuota[c])...]
        }
        return StratifiedSplit(
            train: try Subset(self, indices: tr.sorted(), name: "\(name) samples(\(tr.count))"),
            validation: try Subset(self, indices: va.sorted(), name: "\(name) validation(\(va.count))"),
            rest: try Subset(self, indices: rest.sorted(), name: "\(name) rest(\(rest.count))"))
    }

    /// `samples` images stratified by class and seeded (shorthand for `stratifiedSplit(...).train`).
    public func stratifiedSample(_ samples: Int, seed: UInt64) throws -> Subset {
        try stratifiedSplit(samples: samples, validation: 0, seed: seed).train
    }
}
