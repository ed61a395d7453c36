import Foundation
import XCTest
import SSKDData
import SSKDNN
import SSKDOptim
import SSKDTensor
@testable import SSKDTrain

/// A labelled dataset that fails the test if anything reads a label (for the unlabelled loader).
final class LabelSpy: Dataset {
    let base = Squares(count: 64, seed: 6)
    var name: String { "label spy" }
    var count: Int { base.count }
    var classNames: [String] { base.classNames }
    var imageShape: ImageShape? { base.imageShape }
    var isLabeled: Bool { true }
    private let lock = NSLock()
    private(set) var labelReads = 0
    func image(at index: Int) throws -> ByteImage { try base.image(at: index) }
    func label(at index: Int) throws -> Int? {
        lock.lock(); labelReads += 1; lock.unlock()
        return try base.label(at: index)
    }
}

final class ModelCacheTests: XCTestCase {
    func testSHA256KnownAnswers() {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testFingerprintsFollowContentNotNames() throws {
        let ds = Squares(count: 16, seed: 1)
        let same = try ds.subset(Array(0..<16), name: "another name")
        XCTAssertEqual(try Fingerprint.dataset(ds), try Fingerprint.dataset(same), "same images and labels in the same order")
        XCTAssertNotEqual(try Fingerprint.dataset(ds), try Fingerprint.dataset(try ds.subset(Array((0..<16).reversed()))), "order counts")
        XCTAssertNotEqual(try Fingerprint.dataset(ds), try Fingerprint.dataset(Squares(count: 16, seed: 2)), "pixels count")
        XCTAssertNotEqual(try Fingerprint.dataset(ds), try Fingerprint.dataset(ds.unlabeled()), "labels count")

        let a = try tinyNet(seed: 1), b = try tinyNet(seed: 1), c = try tinyNet(seed: 2)
        XCTAssertEqual(Fingerprint.stateDict(a.stateDict()), Fingerprint.stateDict(b.stateDict()))
        XCTAssertNotEqual(Fingerprint.stateDict(a.stateDict()), Fingerprint.stateDict(c.stateDict()))
        let before = Fingerprint.stateDict(a.stateDict())
        a.stateDict()["5.bias"]!.data[0] += 1e-6
        XCTAssertNotEqual(before, Fingerprint.stateDict(a.stateDict()), "one weight moved by 1e-6")
    }

    func testIdenticalKeyReusesAndChangedKeyMissesNamingTheSetting() throws {
        let cache = try ModelCache(directory: tempDir() + "/teachers")
        let key = #"{"epochs":3,"lr":0.004,"seed":0}"#
        let trained = try tinyNet(seed: 1)
        guard case .miss(_, let why) = cache.load(into: try tinyNet(seed: 2), key: key) else { return XCTFail("an empty cache hit") }
        XCTAssertEqual(why, "no cached weights for these settings")
        let path = try cache.store(trained, key: key, metadata: ["accuracy": "0.91"])
        XCTAssertEqual(path, cache.path(forKey: key))

        let fresh = try tinyNet(seed: 2)
        guard case .hit(let p, let meta) = cache.load(into: fresh, key: key) else { return XCTFail("the same key missed") }
        XCTAssertEqual(p, path)
        XCTAssertEqual(meta["accuracy"], "0.91")
        XCTAssertEqual(meta["key"], key)
        XCTAssertEqual(Fingerprint.stateDict(fresh.stateDict()), Fingerprint.stateDict(trained.stateDict()), "the stored weights came back")

        let other = try tinyNet(seed: 2)
        let before = Fingerprint.stateDict(other.stateDict())
        guard case .miss(let missPath, let reason) = cache.load(into: other, key: #"{"epochs":5,"lr":0.004,"seed":0}"#) else {
            return XCTFail("a changed setting reused the cache")
        }
        XCTAssertNotEqual(missPath, path)
        XCTAssertTrue(reason.contains("epochs: 3 -> 5") && reason.contains(path), reason)
        XCTAssertEqual(Fingerprint.stateDict(other.stateDict()), before, "a miss leaves the model untouched")
    }

    func testBadFilesAreMissesWithAReasonAndNeverLoaded() throws {
        let cache = try ModelCache(directory: tempDir())
        let key = #"{"a":1}"#
        let path = try cache.store(try tinyNet(seed: 1), key: key)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))

        func expectMiss(_ bytes: Data, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
            try bytes.write(to: URL(fileURLWithPath: path))
            let m = try tinyNet(seed: 2)
            let before = Fingerprint.stateDict(m.stateDict())
            switch cache.load(into: m, key: key) {
            case .hit: XCTFail("a bad file was used", file: file, line: line)
            case .miss(_, let reason): XCTAssertTrue(reason.contains(fragment), reason, file: file, line: line)
            }
            XCTAssertEqual(Fingerprint.stateDict(m.stateDict()), before, "nothing loaded", file: file, line: line)
        }
        // A flipped bit in the last weight: the file parses, the checksum does not match.
        var flipped = good; flipped[flipped.count - 1] ^= 0x01
        try expectMiss(flipped, "corrupt")
        try expectMiss(good.prefix(good.count - 10), "unreadable")          // truncated
        try expectMiss(Data("not a safetensors file at all".utf8), "unreadable")
        try expectMiss(Data(), "unreadable")
        // A whole, valid file that was written for another key (copied or renamed into place).
        let elsewhere = try ModelCache(directory: tempDir())
        let foreign = try Data(contentsOf: URL(fileURLWithPath: try elsewhere.store(try tinyNet(seed: 3), key: #"{"a":2}"#)))
        try expectMiss(foreign, "written for other settings (a: 2 -> 1)")
        // A plain checkpoint of the right model is not a cache file either.
        try tinyNet(seed: 1).save(path)
        try expectMiss(try Data(contentsOf: URL(fileURLWithPath: path)), "not a sskd-model-cache-1 file")
        // A cache file for another architecture under this key: does not fit.
        let wide = Sequential([try Linear(3, 5)])
        try good.write(to: URL(fileURLWithPath: path))
        switch cache.load(into: wide, key: key) {
        case .hit: XCTFail("weights of another architecture were loaded")
        case .miss(_, let reason): XCTAssertTrue(reason.contains("do not fit"), reason)
        }
        // After all that, storing again repairs the entry.
        try cache.store(try tinyNet(seed: 1), key: key)
        guard case .hit = cache.load(into: try tinyNet(seed: 2), key: key) else { return XCTFail("a rewritten entry missed") }
    }

    /// Runs storing and reading one key at the same time: every read is a miss (nothing yet) or a
    /// whole, verified file; never a half-written one; no temporary file is left behind.
    func testConcurrentStoresAndLoadsNeverSeeAHalfWrittenFile() throws {
        let dir = tempDir()
        let cache = try ModelCache(directory: dir)
        let key = #"{"shared":true}"#
        let models = try (0..<4).map { try tinyNet(seed: UInt64(10 + $0)) }
        let prints = Set(models.map { Fingerprint.stateDict($0.stateDict()) })
        let lock = NSLock()
        var hits = 0, corrupt: [String] = [], errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            do {
                if i % 2 == 0 {
                    for _ in 0..<5 { try cache.store(models[i / 2 % 4], key: key) }
                } else {
                    for _ in 0..<20 {
                        let m = try tinyNet(seed: 99)
                        switch cache.load(into: m, key: key) {
                        case .hit:
                            let fp = Fingerprint.stateDict(m.stateDict())
                            lock.lock(); hits += 1; if !prints.contains(fp) { corrupt.append("unknown weights") }; lock.unlock()
                        case .miss(_, let reason):
                            if !reason.hasPrefix("no cached weights") { lock.lock(); corrupt.append(reason); lock.unlock() }
                        }
                    }
                }
            } catch { lock.lock(); errors.append("\(error)"); lock.unlock() }
        }
        XCTAssertEqual(errors, [])
        XCTAssertEqual(corrupt, [], "a reader saw a partial or foreign file")
        XCTAssertGreaterThan(hits, 0)
        guard case .hit = cache.load(into: try tinyNet(seed: 99), key: key) else { return XCTFail("the final file is not whole") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp") }, [], "temporary files left")
    }

    /// kd on unlabelled images: even a labelled dataset handed in as `unlabeled` is read without
    /// its labels (the batches carry none, and no label is ever read).
    func testUnlabeledBatchesNeverReadLabels() throws {
        let teacher = try tinyNet(seed: 4)
        teacher.eval()
        let student = try tinyNet(seed: 9)
        var s = TrainSettings(epochs: 2)
        s.batchSize = 16
        s.unlabeledRatio = 2
        let d = try Trainer(model: student, optimizer: try Adam(student.parameters(), lr: 1e-2), train: Squares(count: 32, seed: 5), settings: s)
        d.teacher = teacher
        let spy = LabelSpy()
        d.unlabeled = spy
        var unlabeledImages = 0
        d.loss = { st, te, y, a, T in
            if y == nil { unlabeledImages += st.shape[0] }
            return try Distillation.blend(student: st, teacher: te, labels: y, alpha: a, temperature: T)
        }
        d.progress = Progress(live: false, out: FileHandle(forWritingAtPath: "/dev/null")!)
        let r = try d.fit()
        XCTAssertEqual(r.epochsRun, 2)
        XCTAssertEqual(unlabeledImages, 2 * 2 * 2 * 16, "ratio 2: two unlabelled batches of 16 per labelled batch, 2 labelled batches, 2 epochs")
        XCTAssertEqual(spy.labelReads, 0, "the unlabelled loader read a label")
    }

    /// Two holders of one entry's lock (two ranks of a sweep; here two threads, each with its own
    /// open file, which flock treats alike) take turns: the second waits until the first unlocks.
    func testLockMakesASecondHolderWait() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sskd-lock-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = try ModelCache(directory: dir)
        let first = try cache.lock(key: "k")
        XCTAssertFalse(first.waited)
        XCTAssertTrue(first.path.hasSuffix(".safetensors.lock"))
        let order = NSLock()
        nonisolated(unsafe) var events: [String] = []
        let got = expectation(description: "second lock")
        Thread.detachNewThread {
            let second = try? cache.lock(key: "k")
            order.lock(); events.append(second != nil ? "second locked" : "second failed"); order.unlock()
            second?.unlock()
            got.fulfill()
        }
        // (Whenever the thread gets to run, it cannot hold the lock before the first unlocks.)
        Thread.sleep(forTimeInterval: 0.2)
        order.lock(); events.append("first unlocks"); order.unlock()
        first.unlock()
        wait(for: [got], timeout: 30)
        XCTAssertEqual(events, ["first unlocks", "second locked"])
        // Another key's lock is independent.
        let other = try cache.lock(key: "other")
        XCTAssertFalse(other.waited)
        // The holding thread asking again would wait for itself forever: refused (found by the Lua API fuzzer).
        XCTAssertThrowsError(try cache.lock(key: "other")) { XCTAssertTrue("\($0)".contains("already holds the lock"), "\($0)") }
        other.unlock()
        XCTAssertFalse(try cache.lock(key: "other").waited, "free again after unlock")
    }
}
