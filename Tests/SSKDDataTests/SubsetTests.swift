import XCTest
import SSKDTensor
@testable import SSKDData

final class SubsetTests: XCTestCase {
    func testStratifiedExactEvenDisjointSeeded() throws {
        // 10 classes of 30 images, interleaved.
        let ds = MemoryDataset(labels: (0..<300).map { $0 % 10 }, classes: 10)
        let s = try ds.stratifiedSplit(samples: 53, validation: 20, seed: 7)
        XCTAssertEqual(s.train.count, 53)
        XCTAssertEqual(s.validation.count, 20)
        XCTAssertEqual(s.rest.count, 300 - 73)
        let tc = try s.train.classCounts()
        XCTAssertEqual(tc.reduce(0, +), 53)
        XCTAssertEqual(tc.max()! - tc.min()!, 1, "as even as possible: \(tc)")
        XCTAssertEqual(try s.validation.classCounts(), [Int](repeating: 2, count: 10))
        let a = Set(s.train.indices), b = Set(s.validation.indices), c = Set(s.rest.indices)
        XCTAssertTrue(a.isDisjoint(with: b) && a.isDisjoint(with: c) && b.isDisjoint(with: c))
        XCTAssertEqual(a.union(b).union(c), Set(0..<300))
        XCTAssertEqual(s.train.indices, s.train.indices.sorted())
        // Labels follow through the view.
        for i in 0..<s.train.count { XCTAssertEqual(try s.train.label(at: i), s.train.indices[i] % 10) }
        // Seeded: same seed, same split; another seed, another split.
        let again = try ds.stratifiedSplit(samples: 53, validation: 20, seed: 7)
        XCTAssertEqual(again.train.indices, s.train.indices)
        XCTAssertEqual(again.validation.indices, s.validation.indices)
        let other = try ds.stratifiedSplit(samples: 53, validation: 20, seed: 8)
        XCTAssertNotEqual(other.train.indices, s.train.indices)
        XCTAssertEqual(try ds.stratifiedSample(53, seed: 7).indices, s.train.indices)
    }

    func testUnbalancedClassesGiveTheirShortfallToOthers() throws {
        // Class 0 has 3 images, class 1 has 40, class 2 has 40.
        let labels = [Int](repeating: 0, count: 3) + [Int](repeating: 1, count: 40) + [Int](repeating: 2, count: 40)
        let ds = MemoryDataset(labels: labels, classes: 3)
        let s = try ds.stratifiedSplit(samples: 30, validation: 6, seed: 1)
        let tc = try s.train.classCounts()
        XCTAssertEqual(tc[0], 3)
        XCTAssertEqual(tc[1] + tc[2], 27)
        XCTAssertLessThanOrEqual(abs(tc[1] - tc[2]), 1)
        XCTAssertEqual(try s.validation.classCounts(), [0, 3, 3])
        // All images when samples is nil.
        XCTAssertEqual(try ds.stratifiedSplit(samples: nil, validation: 10, seed: 1).train.count, 73)
        assertDataError(["exceed"]) { _ = try ds.stratifiedSplit(samples: 80, validation: 10, seed: 1) }
    }

    func testViews() throws {
        let ds = MemoryDataset(labels: [0, 1, 2, 0], classes: 3)
        let sub = try ds.subset([3, 1])
        XCTAssertEqual(try sub.image(at: 0), try ds.image(at: 3))
        XCTAssertEqual(try sub.labels(), [0, 1])
        assertDataError(["subset index 4 out of range"]) { _ = try ds.subset([4]) }
        let un = ds.unlabeled()
        XCTAssertFalse(un.isLabeled)
        XCTAssertNil(try un.label(at: 2))
        assertDataError(["unlabeled"]) { _ = try un.labels() }
        XCTAssertEqual(try un.image(at: 2), try ds.image(at: 2))
        let cat = try ConcatDataset([ds, sub])
        XCTAssertEqual(cat.count, 6)
        XCTAssertEqual(try cat.image(at: 4), try ds.image(at: 3))
        XCTAssertEqual(try cat.label(at: 5), 1)
        assertDataError(["out of range"]) { _ = try cat.image(at: 6) }
    }
}

final class NestedSubsetTests: XCTestCase {
    func testSubsetOfSubsetIndexesTheUnderlyingDataset() throws {
        let ds = try IDXDataset.fashionMNIST(train: false)
        let outer = try ds.subset([10, 20, 30, 40])
        let inner = try outer.subset([3, 1])
        XCTAssertEqual(inner.indices, [40, 20])
        XCTAssertTrue(inner.base === ds)
        XCTAssertEqual(try inner.image(at: 0), try ds.image(at: 40))
        XCTAssertEqual(try inner.label(at: 1), try ds.label(at: 20))
        let split = try outer.stratifiedSplit(samples: 2, validation: 0, seed: 0)
        XCTAssertTrue(Set(split.train.indices).isSubset(of: [10, 20, 30, 40]))
    }
}
