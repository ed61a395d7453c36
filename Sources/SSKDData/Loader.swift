// Batches for training: shuffled per epoch from the seed, augmented per sample, stacked NCHW.
//
//   Batch.images  [N, C, H, W] Float32, [0, 1] unless the transform normalised
//   Batch.labels  [N] class indices (and `labelTensor` [N] as floats), nil when unlabeled
//   Batch.views   with a MultiView: one [N, C, H, W] tensor per view (images == views[0])
//
// An epoch iterator prepares the next `prefetch` batches on a background thread while the
// consumer computes; within a batch, images are augmented in parallel. Every random draw comes
// from Generator.derived(seed, epoch, dataset index), so batches are identical whatever the
// thread count, prefetch depth or timing.

import Foundation
import SSKDTensor

/// One batch of images and labels.
public struct Batch {
    /// Epoch and zero-based batch number within it.
    public let epoch: Int, number: Int
    /// Indices of the images in the dataset.
    public let indices: [Int]
    /// `[N, C, H, W]` images (the first view with a MultiView).
    public let images: Tensor
    /// Class indices, nil for unlabeled data.
    public let labels: [Int]?
    /// Every view `[N, C, H, W]` (just `[images]` without a MultiView).
    public let views: [Tensor]
    public var count: Int { indices.count }
    /// Labels as a `[N]` Float tensor of class indices (what cross-entropy takes).
    public func labelTensor() throws -> Tensor? {
        try labels.map { try Tensor($0.map { Float($0) }, shape: [$0.count]) }
    }
}

/// Loads a dataset in batches (`torch.utils.data.DataLoader` with a sampler seeded per epoch).
public final class DataLoader {
    public let dataset: Dataset
    public let batchSize: Int
    public let shuffle: Bool
    public let dropLast: Bool
    public let seed: UInt64
    public let transform: Transform?
    public let multiView: MultiView?
    /// Batches prepared ahead of the consumer (bounded queue depth, at least 1).
    public let prefetch: Int
    /// Images augmented in parallel within a batch (default: `Runtime.threads`).
    public let workers: Int

    /// - Parameters:
    ///   - transform: applied to every image (nil: the image scaled to [0, 1]).
    ///   - views: several augmented views per image instead of `transform`.
    ///   - prefetch: batches prepared ahead on the background thread (0: load synchronously).
    public init(_ dataset: Dataset, batchSize: Int, shuffle: Bool = true, dropLast: Bool = false, seed: UInt64 = 0,
                transform: Transform? = nil, views: MultiView? = nil, prefetch: Int = 2, workers: Int? = nil) throws {
        guard batchSize >= 1 else { throw DataError("DataLoader", "batch size must be >= 1, got \(batchSize)") }
        guard prefetch >= 0 && prefetch <= 64 else { throw DataError("DataLoader", "prefetch must be in 0...64, got \(prefetch)") }
        guard transform == nil || views == nil else { throw DataError("DataLoader", "give either a transform or views, not both") }
        if let v = views, v.views.isEmpty { throw DataError("DataLoader", "a MultiView needs at least one view") }
        guard dataset.count > 0 else { throw DataError("DataLoader", "\(dataset.name) is empty") }
        let w = workers ?? Runtime.threads
        guard w >= 1 else { throw DataError("DataLoader", "workers must be >= 1, got \(w)") }
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.seed = seed
        self.transform = transform
        self.multiView = views
        self.prefetch = prefetch
        self.workers = w
    }

    /// Batches per epoch.
    public var batchCount: Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// The order of dataset indices in `epoch` (a seeded permutation, or 0..<n without shuffle).
    public func order(epoch: Int) -> [Int] {
        shuffle ? Generator.derived(seed: seed, 0x5348_5546_464C_45, UInt64(truncatingIfNeeded: epoch)).permutation(dataset.count)
                : Array(0..<dataset.count)
    }

    /// The generator of sample `index` in `epoch`.
    public func generator(epoch: Int, index: Int) -> Generator {
        Generator.derived(seed: seed, 0x4155_474D, UInt64(truncatingIfNeeded: epoch), UInt64(index))
    }

    /// Builds batch `number` of `epoch` synchronously (the iterator calls this on its thread).
    public func batch(epoch: Int, number: Int) throws -> Batch {
        try makeBatch(epoch: epoch, number: number, order: order(epoch: epoch))
    }

    func makeBatch(epoch: Int, number: Int, order: [Int]) throws -> Batch {
        guard number >= 0 && number < batchCount else {
            throw DataError("DataLoader", "batch \(number) out of range for \(batchCount) batches")
        }
        let lo = number * batchSize, hi = min(order.count, lo + batchSize)
        let idx = Array(order[lo..<hi])
        let n = idx.count
        let nviews = multiView?.views.count ?? 1
        // Each image: its views, augmented independently of the others.
        var results = [Result<[Image], Error>?](repeating: nil, count: n)
        let lanes = min(workers, n)
        results.withUnsafeMutableBufferPointer { res in
            let out = res
            parallelTasks(lanes) { lane in
                for i in stride(from: lane, to: n, by: lanes) {
                    out[i] = Result { try self.views(of: idx[i], epoch: epoch) }
                }
            }
        }
        var images = [[Image]]()
        images.reserveCapacity(n)
        for r in results { images.append(try r!.get()) }
        let shape = images[0][0].shape
        var tensors = [Tensor]()
        for v in 0..<nviews {
            let t = try Tensor.zeros([n, shape.channels, shape.height, shape.width])
            for i in 0..<n {
                let img = images[i][v]
                guard img.shape == shape else {
                    throw DataError(dataset.name, "image \(idx[i]) is \(img.shape) after the transform but image \(idx[0]) is \(shape); add a Resize or crop so images stack")
                }
                let dst = t.data + i * shape.count
                let r = img.range
                img.pixels.withUnsafeBufferPointer { p in
                    if r == 1 { dst.update(from: p.baseAddress!, count: shape.count) } else {
                        for k in 0..<shape.count { dst[k] = p[k] / r }
                    }
                }
            }
            tensors.append(t)
        }
        var labels: [Int]? = nil
        if dataset.isLabeled {
            labels = try idx.map { i in
                guard let y = try dataset.label(at: i) else { throw DataError(dataset.name, "image \(i) has no label") }
                return y
            }
        }
        return Batch(epoch: epoch, number: number, indices: idx, images: tensors[0], labels: labels, views: tensors)
    }

    private func views(of index: Int, epoch: Int) throws -> [Image] {
        let img = Image(try dataset.image(at: index))
        let g = generator(epoch: epoch, index: index)
        if let mv = multiView { return try mv.apply(img, generator: g) }
        if let t = transform { return [try t.apply(img, generator: g)] }
        return [F.toFloat(img)]
    }

    /// An iterator over `epoch`'s batches, prefetching on a background thread.
    public func epoch(_ epoch: Int) -> EpochIterator { EpochIterator(loader: self, epoch: epoch) }

    /// Calls `body` with each batch of `epoch`; `body` returns false to stop early.
    public func forEach(epoch: Int, _ body: (Batch) throws -> Bool) throws {
        let it = self.epoch(epoch)
        defer { it.close() }
        while let b = try it.next() {
            if try !body(b) { break }
        }
    }
}

/// The batches of one epoch in order. A background thread keeps up to `prefetch` batches ready;
/// `close()` (or releasing the iterator) stops it and waits for it, so nothing runs after.
/// An error while loading is thrown by the `next()` that would have returned that batch.
public final class EpochIterator {
    public let epoch: Int
    private let loader: DataLoader
    private let order: [Int]
    private let total: Int
    private var delivered = 0

    // Shared with the worker thread, guarded by `cond`.
    private let cond = NSCondition()
    private var queue = [Result<Batch, Error>]()
    private var cancelled = false
    private var workerDone = false
    private var started = false

    init(loader: DataLoader, epoch: Int) {
        self.loader = loader
        self.epoch = epoch
        self.order = loader.order(epoch: epoch)
        self.total = loader.batchCount
    }

    private func start() {
        started = true
        if loader.prefetch == 0 { workerDone = true; return }
        let thread = Thread { [self] in self.work() }
        thread.name = "sskd-loader"
        thread.start()
    }

    private func work() {
        for b in 0..<total {
            cond.lock()
            while queue.count >= loader.prefetch && !cancelled { cond.wait() }
            let stop = cancelled
            cond.unlock()
            if stop { break }
            let r = Result { try loader.makeBatch(epoch: epoch, number: b, order: order) }
            cond.lock()
            queue.append(r)
            cond.broadcast()
            cond.unlock()
            if case .failure = r { break }
        }
        cond.lock()
        workerDone = true
        cond.broadcast()
        cond.unlock()
    }

    /// The next batch, or nil after the last one.
    public func next() throws -> Batch? {
        if !started { start() }
        guard delivered < total else { return nil }
        if loader.prefetch == 0 {
            guard !cancelled else { return nil }
            let b = try loader.makeBatch(epoch: epoch, number: delivered, order: order)
            delivered += 1
            return b
        }
        cond.lock()
        while queue.isEmpty && !workerDone && !cancelled { cond.wait() }
        if queue.isEmpty {
            cond.unlock()
            return nil
        }
        let r = queue.removeFirst()
        cond.broadcast()
        cond.unlock()
        delivered += 1
        if case .failure = r { delivered = total }
        return try r.get()
    }

    /// Stops prefetching and waits for the background thread to finish its current batch.
    public func close() {
        cond.lock()
        cancelled = true
        cond.broadcast()
        if started { while !workerDone { cond.wait() } }
        queue.removeAll()
        cond.unlock()
    }

    deinit { close() }
}
