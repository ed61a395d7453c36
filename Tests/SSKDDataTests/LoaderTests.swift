import XCTest
import SSKDTensor
@testable import SSKDData

final class LoaderTests: XCTestCase {
    let augment = Compose([RandomHorizontalFlip(), try! RandomRotation(20), try! RandomCrop(height: 4, width: 5, padding: (1, 1, 1, 1)),
                           try! ColorJitter(brightness: 0.3, contrast: 0.3)])

    func collect(_ loader: DataLoader, epoch: Int) throws -> [([Float], [Int]?, [Int])] {
        var out = [([Float], [Int]?, [Int])]()
        try loader.forEach(epoch: epoch) { b in
            out.append((b.images.toArray(), b.labels, b.indices))
            return true
        }
        return out
    }

    /// Data-parallel shards: each global batch split into contiguous parts, one per rank, that
    /// together are the unsharded batch, images augmented exactly as without sharding.
    func testShardsPartitionEachGlobalBatch() throws {
        let ds = MemoryDataset(labels: (0..<11).map { $0 % 3 }, classes: 3)
        let whole = try collect(try DataLoader(ds, batchSize: 4, seed: 9, transform: augment), epoch: 2)
        let parts = try (0..<3).map { r in try collect(try DataLoader(ds, batchSize: 4, seed: 9, transform: augment, shard: (r, 3)), epoch: 2) }
        for (b, batch) in whole.enumerated() {
            XCTAssertEqual(parts.flatMap { $0[b].2 }, batch.2, "batch \(b): indices")
            XCTAssertEqual(parts.flatMap { $0[b].0 }, batch.0, "batch \(b): augmented pixels")
            XCTAssertEqual(parts.flatMap { $0[b].1 ?? [] }, batch.1, "batch \(b): labels")
        }
        // 11 images: batches of 4, 4, 3 split 1/1/2, 1/1/2, 1/1/1.
        XCTAssertEqual(parts.map { $0.map(\.2.count) }, [[1, 1, 1], [1, 1, 1], [2, 2, 1]])
        // A last batch smaller than the number of ranks leaves some ranks an empty shard.
        let tiny = try DataLoader(MemoryDataset(labels: [0, 1, 2, 0, 1], classes: 3), batchSize: 4, shuffle: false, shard: (0, 2))
        let last = try tiny.batch(epoch: 0, number: 1)
        XCTAssertEqual(last.count, 0)
        XCTAssertEqual(last.globalCount, 1)
        XCTAssertEqual(last.labels, [])
        XCTAssertThrowsError(try DataLoader(ds, batchSize: 4, shard: (2, 2))) { XCTAssertTrue("\($0)".contains("shard 2 of 2 does not exist")) }
    }

    func testBatchesShapesAndLabels() throws {
        let ds = MemoryDataset(labels: (0..<10).map { $0 % 3 }, classes: 3)
        let loader = try DataLoader(ds, batchSize: 4, shuffle: false)
        XCTAssertEqual(loader.batchCount, 3)
        let it = loader.epoch(0)
        let b0 = try it.next()!
        XCTAssertEqual(b0.images.shape, [4, 1, 4, 5])
        XCTAssertEqual(b0.labels, [0, 1, 2, 0])
        XCTAssertEqual(try b0.labelTensor()!.toArray(), [0, 1, 2, 0])
        // Without a transform images are scaled to [0, 1].
        let img1 = try ds.image(at: 1).pixels.map { Float($0) / 255 }
        XCTAssertEqual(Array(b0.images.toArray()[20..<40]), img1)
        _ = try it.next()
        let last = try it.next()!
        XCTAssertEqual(last.count, 2)
        XCTAssertNil(try it.next())
        XCTAssertNil(try it.next())
        // drop-last.
        let dl = try DataLoader(ds, batchSize: 4, dropLast: true)
        XCTAssertEqual(dl.batchCount, 2)
        XCTAssertEqual(try collect(dl, epoch: 0).map(\.2.count), [4, 4])
    }

    func testShuffleIsSeededPerEpochAndCoversAll() throws {
        let ds = MemoryDataset(labels: (0..<50).map { $0 % 5 }, classes: 5)
        let l = try DataLoader(ds, batchSize: 8, seed: 11)
        let e0 = try collect(l, epoch: 0).flatMap(\.2), e1 = try collect(l, epoch: 1).flatMap(\.2)
        XCTAssertEqual(e0.sorted(), Array(0..<50))
        XCTAssertEqual(e1.sorted(), Array(0..<50))
        XCTAssertNotEqual(e0, e1)
        XCTAssertNotEqual(e0, Array(0..<50))
        XCTAssertEqual(try collect(DataLoader(ds, batchSize: 8, seed: 11), epoch: 1).flatMap(\.2), e1)
        XCTAssertNotEqual(try collect(DataLoader(ds, batchSize: 8, seed: 12), epoch: 1).flatMap(\.2), e1)
    }

    /// Same seed, same batches, whatever the thread count, workers and prefetch depth.
    func testDeterministicAcrossThreadsAndPrefetch() throws {
        let ds = MemoryDataset(labels: (0..<37).map { $0 % 4 }, classes: 4)
        let saved = Runtime.threads
        defer { try? Runtime.setThreads(saved) }
        try Runtime.setThreads(1)
        let reference = try collect(DataLoader(ds, batchSize: 6, seed: 3, transform: augment, prefetch: 0, workers: 1), epoch: 2)
        try Runtime.setThreads(2)
        for (workers, prefetch) in [(1, 1), (2, 2), (4, 4), (3, 0)] {
            let got = try collect(DataLoader(ds, batchSize: 6, seed: 3, transform: augment, prefetch: prefetch, workers: workers), epoch: 2)
            XCTAssertEqual(got.count, reference.count)
            for (a, b) in zip(got, reference) {
                XCTAssertEqual(a.0, b.0, "workers \(workers) prefetch \(prefetch)")
                XCTAssertEqual(a.1, b.1)
                XCTAssertEqual(a.2, b.2)
            }
        }
        // The augmentation actually changes images, and differs between epochs.
        let plain = try collect(DataLoader(ds, batchSize: 6, seed: 3, prefetch: 0), epoch: 2)
        XCTAssertNotEqual(plain[0].0, reference[0].0)
        let nextEpoch = try collect(DataLoader(ds, batchSize: 6, seed: 3, transform: augment), epoch: 3)
        XCTAssertNotEqual(nextEpoch[0].0, reference[0].0)
        // A random access batch equals the iterated one.
        let b = try DataLoader(ds, batchSize: 6, seed: 3, transform: augment).batch(epoch: 2, number: 4)
        XCTAssertEqual(b.images.toArray(), reference[4].0)
    }

    func testEarlyStopAndRestart() throws {
        let ds = MemoryDataset(labels: (0..<200).map { $0 % 2 }, classes: 2)
        let loader = try DataLoader(ds, batchSize: 2, seed: 1, transform: augment, prefetch: 3)
        var seen = 0
        try loader.forEach(epoch: 0) { _ in seen += 1; return seen < 3 }
        XCTAssertEqual(seen, 3)
        // An iterator dropped after one batch shuts down; a closed one returns nil.
        do {
            let it = loader.epoch(1)
            _ = try it.next()
            it.close()
            XCTAssertNil(try it.next())
        }
        // Released without close: deinit stops the worker (it does not keep the iterator alive).
        let ds2 = MemoryDataset(labels: (0..<400).map { $0 % 2 }, classes: 2)
        weak var weakIt: EpochIterator?
        do {
            let it = try DataLoader(ds2, batchSize: 4, prefetch: 2).epoch(0)
            weakIt = it
            _ = try it.next()
        }
        XCTAssertNil(weakIt)
        let reads = ds2.reads
        usleep(20000)
        XCTAssertEqual(ds2.reads, reads, "no reads after the iterator is released")
        XCTAssertEqual(try collect(loader, epoch: 0).count, 100)
    }

    /// The worker stays at most `prefetch` batches (+ the one it is building) ahead, and does
    /// nothing more once the iterator is closed.
    func testPrefetchIsBoundedAndStopsOnClose() throws {
        let ds = MemoryDataset(labels: (0..<400).map { $0 % 2 }, classes: 2)
        let loader = try DataLoader(ds, batchSize: 4, seed: 1, prefetch: 2)
        let it = loader.epoch(0)
        _ = try it.next()
        _ = try it.next()
        // Give the worker time to run ahead as far as it may.
        for _ in 0..<1000 where ds.reads < (2 + 2) * 4 { usleep(2000) }
        usleep(20000)
        XCTAssertLessThanOrEqual(ds.reads, (2 + 2 + 1) * 4)
        XCTAssertGreaterThanOrEqual(ds.reads, (2 + 2) * 4)
        it.close()
        let after = ds.reads
        usleep(20000)
        XCTAssertEqual(ds.reads, after, "no reads after close()")
        XCTAssertNil(try it.next())
    }

    func testWorkerErrorsReachTheConsumer() throws {
        let ds = MemoryDataset(labels: (0..<20).map { $0 % 2 }, classes: 2)
        ds.failAt = 13
        for prefetch in [0, 2] {
            let loader = try DataLoader(ds, batchSize: 5, shuffle: false, prefetch: prefetch)
            let it = loader.epoch(0)
            XCTAssertNotNil(try it.next())
            XCTAssertNotNil(try it.next())
            assertDataError(["image 13 is broken"]) { _ = try it.next() }
            if prefetch > 0 { XCTAssertNil(try it.next()) }
        }
        // Images that do not stack are an error naming the fix.
        let folder = MemoryDataset(labels: [0, 1], classes: 2)
        let grow = Lambda("grow") { img, _ in img.pixels[0] == 0 ? try TF.pad(img, left: 1, top: 0, right: 0, bottom: 0) : img }
        assertDataError(["after the transform", "Resize"]) { _ = try DataLoader(folder, batchSize: 2, shuffle: false, transform: grow).batch(epoch: 0, number: 0) }
        assertDataError(["batch size"]) { _ = try DataLoader(folder, batchSize: 0) }
    }

    func testUnlabeledAndViews() throws {
        let ds = MemoryDataset(labels: (0..<8).map { $0 % 2 }, classes: 2).unlabeled()
        let loader = try DataLoader(ds, batchSize: 4, seed: 2, views: MultiView(twice: augment))
        let b = try loader.batch(epoch: 0, number: 1)
        XCTAssertNil(b.labels)
        XCTAssertNil(try b.labelTensor())
        XCTAssertEqual(b.views.count, 2)
        XCTAssertEqual(b.views[1].shape, [4, 1, 4, 5])
        XCTAssertTrue(b.images === b.views[0])
        XCTAssertNotEqual(b.views[0].toArray(), b.views[1].toArray())
    }

    /// STL-10 files -> stratified subset -> paper transform -> NCHW batches in [0, 1].
    func testPaperPipelineOnSTL10Files() throws {
        let dir = try makeTempDir(self)
        let n = 20
        var x = [UInt8](repeating: 0, count: n * 27648)
        for i in 0..<x.count { x[i] = UInt8((i * 7 + i / 27648 * 13) % 256) }
        try writeBytes(x, to: dir + "/train_X.bin")
        try writeBytes((0..<n).map { UInt8($0 % 10 + 1) }, to: dir + "/train_y.bin")
        let train = try STL10(root: dir, split: .train)
        let split = try train.stratifiedSplit(samples: 10, validation: 5, seed: 4)
        XCTAssertEqual(try split.train.classCounts(), [Int](repeating: 1, count: 10))
        let loader = try DataLoader(split.train, batchSize: 4, seed: 4, transform: Compose.paperTrain())
        var count = 0
        try loader.forEach(epoch: 0) { b in
            XCTAssertEqual(b.images.shape, [b.count, 3, 96, 96])
            XCTAssertTrue(b.images.toArray().allSatisfy { $0 >= 0 && $0 <= 1 })
            for (k, i) in b.indices.enumerated() { XCTAssertEqual(b.labels![k], try split.train.label(at: i)) }
            count += b.count
            return true
        }
        XCTAssertEqual(count, 10)
        // The test transform is the identity at 96x96 apart from scaling.
        let test = try DataLoader(split.validation, batchSize: 5, shuffle: false, transform: Compose.paperTest()).batch(epoch: 0, number: 0)
        let expected = try split.validation.image(at: 2).pixels.map { Float($0) / 255 }
        XCTAssertEqual(Array(test.images.toArray()[(2 * 27648)..<(3 * 27648)]), expected)
    }
}
