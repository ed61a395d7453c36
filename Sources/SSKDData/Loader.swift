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
//
// Data-parallel training gives each rank a shard: the loader still walks the global batches of
// the seeded order, and rank r of R keeps the r-th contiguous part of each one (sizes differ by
// at most one image; a part may be empty in a last batch smaller than R). Every image keeps the
// augmentation it would get in one process (its draws depend on seed, epoch and index only).

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
    /// Images of the whole (global) batch this one is a shard of: `count` without sharding.
    public let globalCount: Int
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
    /// This process's part of every batch: rank `index` of `count` (0 of 1: the whole batch).
    public let shard: (index: Int, count: Int)

    /// - Parameters:
    ///   - transform: applied to every image (nil: the image scaled to [0, 1]).
    ///   - views: several augmented views per image instead of `transform`.
    ///   - prefetch: batches prepared ahead on the background thread (0: load synchronously).
    ///   - shard: (rank, ranks): keep only this rank's contiguous part of each global batch of `batchSize`.
    public init(_ dataset: Dataset, batchSize: Int, shuffle: Bool = true, dropLast: Bool = false, seed: UInt64 = 0,
                transform: Transform? = nil, views: MultiView? = nil, prefetch: Int = 2, workers: Int? = nil,
                shard: (index: Int, count: Int) = (0, 1)) throws {
        guard batchSize >= 1 else { throw DataError("DataLoader", "batch size must be >= 1, got \(batchSize)") }
        guard shard.count >= 1, shard.index >= 0, shard.index < shard.count else {
            throw DataError("DataLoader", "shard \(shard.index) of \(shard.count) does not exist")
        }
        guard prefetch >= 0 && prefetch <= 64 else { throw DataError("DataLoader", "prefetch must be in 0...64, got \(prefetch)") }
        guard transform == nil || views == nil else { throw DataError("DataLoader", "give either a transform or views, not both") }
        if let v = views, v.views.isEmpty { throw DataError("DataLoader", "a MultiView needs at least one view") }
        guard dataset.count > 0 else { throw DataError("DataLoader", "\(dataset.name) is empty") }
        let w = workers ?? Runtime.threads
        guard w >= 1 else { throw DataError("DataLoader", "workers must be >= 1, got \(w)") }
        Allocator.tuneForImages()
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.seed = seed
        self.transform = transform
        self.multiView = views
        self.prefetch = prefetch
        self.workers = w
        self.shard = shard
    }

    /// Batches per epoch.
    public var batchCount: Int {
        // (count - 1) / batch + 1, not (count + batch - 1) / batch: a batch near Int.max must not overflow.
        dropLast ? dataset.count / batchSize : (dataset.count - 1) / batchSize + 1
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
        let lo = number * batchSize, hi = lo + min(order.count - lo, batchSize)
        let global = hi - lo
        let idx = Array(order[(lo + global * shard.index / shard.count)..<(lo + global * (shard.index + 1) / shard.count)])
        let n = idx.count
        if n == 0 {
            // This rank's part of a last batch smaller than the number of ranks.
            let empty = try Tensor.zeros([0])
            return Batch(epoch: epoch, number: number, indices: [], images: empty, labels: dataset.isLabeled ? [] : nil,
                         views: [empty], globalCount: global)
        }
        let nviews = multiView?.views.count ?? 1
        // The first image fixes the shape; the others are augmented in parallel and each
        // worker writes its result straight into the batch tensors (no batch of images is held).
        let first = try views(of: idx[0], epoch: epoch)
        let shape = first[0].shape
        for v in first where v.shape != shape {
            throw DataError(dataset.name, "the views of image \(idx[0]) differ in shape (\(shape) and \(v.shape))")
        }
        let tensors = try (0..<nviews).map { _ in try Tensor.zeros([n, shape.channels, shape.height, shape.width]) }
        let dst = tensors.map { $0.data }
        func store(_ imgs: [Image], at i: Int) throws {
            for (v, img) in imgs.enumerated() {
                guard img.shape == shape else {
                    throw DataError(dataset.name, "image \(idx[i]) is \(img.shape) after the transform but image \(idx[0]) is \(shape); add a Resize or crop so images stack")
                }
                let out = dst[v] + i * shape.count
                let r = img.range
                img.pixels.withUnsafeBufferPointer { p in
                    if r == 1 { out.update(from: p.baseAddress!, count: shape.count) } else {
                        for k in 0..<shape.count { out[k] = p[k] / r }
                    }
                }
            }
        }
        try store(first, at: 0)
        var errors = [Error?](repeating: nil, count: n)
        let lanes = min(workers, n - 1)
        if lanes > 0 {
            errors.withUnsafeMutableBufferPointer { errs in
                let errs = errs
                parallelTasks(lanes) { lane in
                    for i in stride(from: 1 + lane, to: n, by: lanes) {
                        do { try store(try self.views(of: idx[i], epoch: epoch), at: i) } catch { errs[i] = error }
                    }
                }
            }
        }
        if let e = errors.lazy.compactMap({ $0 }).first { throw e }
        var labels: [Int]? = nil
        if dataset.isLabeled {
            labels = try idx.map { i in
                guard let y = try dataset.label(at: i) else { throw DataError(dataset.name, "image \(i) has no label") }
                return y
            }
        }
        return Batch(epoch: epoch, number: number, indices: idx, images: tensors[0], labels: labels, views: tensors, globalCount: global)
    }

    private func views(of index: Int, epoch: Int) throws -> [Image] {
        let img = Image(try dataset.image(at: index))
        let g = generator(epoch: epoch, index: index)
        if let mv = multiView { return try mv.apply(img, generator: g) }
        if let t = transform { return [try t.apply(img, generator: g)] }
        return [TF.toFloat(img)]
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
    private var started = false
    private var closed = false
    /// Shared with the worker thread. The worker holds this, not the iterator, so releasing the
    /// iterator runs `deinit`, which stops the worker.
    private let shared = Shared()

    final class Shared {
        let cond = NSCondition()
        var queue = [Result<Batch, Error>]()
        var cancelled = false
        var workerDone = false
    }

    init(loader: DataLoader, epoch: Int) {
        self.loader = loader
        self.epoch = epoch
        self.order = loader.order(epoch: epoch)
        self.total = loader.batchCount
    }

    private func start() {
        started = true
        if loader.prefetch == 0 { return }
        let (shared, loader, order, epoch, total) = (self.shared, self.loader, self.order, self.epoch, self.total)
        let thread = Thread {
            EpochIterator.work(shared: shared, loader: loader, order: order, epoch: epoch, total: total)
        }
        thread.name = "sskd-loader"
        thread.start()
    }

    private static func work(shared: Shared, loader: DataLoader, order: [Int], epoch: Int, total: Int) {
        let cond = shared.cond
        for b in 0..<total {
            cond.lock()
            while shared.queue.count >= loader.prefetch && !shared.cancelled { cond.wait() }
            let stop = shared.cancelled
            cond.unlock()
            if stop { break }
            let r = Result { try loader.makeBatch(epoch: epoch, number: b, order: order) }
            cond.lock()
            shared.queue.append(r)
            cond.broadcast()
            cond.unlock()
            if case .failure = r { break }
        }
        cond.lock()
        shared.workerDone = true
        cond.broadcast()
        cond.unlock()
    }

    /// The next batch, or nil after the last one (or after `close()`).
    public func next() throws -> Batch? {
        guard !closed, delivered < total else { return nil }
        if !started { start() }
        if loader.prefetch == 0 {
            let b = try loader.makeBatch(epoch: epoch, number: delivered, order: order)
            delivered += 1
            return b
        }
        let cond = shared.cond
        cond.lock()
        while shared.queue.isEmpty && !shared.workerDone { cond.wait() }
        if shared.queue.isEmpty {
            cond.unlock()
            return nil
        }
        let r = shared.queue.removeFirst()
        cond.broadcast()
        cond.unlock()
        delivered += 1
        if case .failure = r { delivered = total }
        return try r.get()
    }

    /// Stops prefetching and waits for the background thread to finish its current batch.
    public func close() {
        if closed { return }
        closed = true
        let cond = shared.cond
        cond.lock()
        shared.cancelled = true
        cond.broadcast()
        if started && loader.prefetch > 0 { while !shared.workerDone { cond.wait() } }
        shared.queue.removeAll()
        cond.unlock()
    }

    deinit { close() }
}
