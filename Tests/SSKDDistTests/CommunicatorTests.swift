import XCTest
@testable import SSKDDist
import SSKDTensor

/// One rank without MPI (the test runner is not started by mpirun): every collective keeps or
/// copies the values, and bad arguments are errors. The MPI paths run in SSKDLuaTests'
/// DistributedTests, which start `mpirun -np 2 sskd`.
final class CommunicatorTests: XCTestCase {
    func testLocalIsOneRank() throws {
        let c = Communicator.local
        XCTAssertEqual(c.rank, 0)
        XCTAssertEqual(c.size, 1)
        XCTAssertTrue(c.isMain)
        XCTAssertFalse(c.usesMPI)
        try c.barrier()
    }

    func testCollectivesAtSizeOneKeepValues() throws {
        let c = Communicator.local
        for op in ReduceOp.allCases {
            let t = try Tensor([1, -2, 3], shape: [3])
            try c.allReduce(t, op: op)
            XCTAssertEqual(t.toArray(), [1, -2, 3], "\(op)")
        }
        let t = try Tensor([4, 5], shape: [2])
        try c.broadcast(t, root: 0)
        XCTAssertEqual(t.toArray(), [4, 5])
        let parts = try c.allGather(t)
        XCTAssertEqual(parts.count, 1)
        XCTAssertEqual(parts[0].toArray(), [4, 5])
        XCTAssertFalse(parts[0] === t, "all_gather returns new tensors")
        XCTAssertEqual(try c.allGather(bytes: [1, 2, 3]), [[1, 2, 3]])
        XCTAssertEqual(try c.gather(bytes: [7], root: 0), [[7]])
        XCTAssertEqual(try c.broadcast(bytes: [9, 8], root: 0), [9, 8])
    }

    func testBadRootAndOpAreErrors() throws {
        let c = Communicator.local
        let t = try Tensor([1], shape: [1])
        XCTAssertThrowsError(try c.broadcast(t, root: 1)) { XCTAssertTrue("\($0)".contains("root 1 is not a rank"), "\($0)") }
        XCTAssertThrowsError(try c.gather(bytes: [], root: -1)) { XCTAssertTrue("\($0)".contains("root -1"), "\($0)") }
        XCTAssertThrowsError(try ReduceOp(parsing: "prod", op: "all_reduce")) { XCTAssertTrue("\($0)".contains("unknown reduce op 'prod'"), "\($0)") }
        XCTAssertEqual(try ReduceOp(parsing: "MEAN", op: "x"), .mean)
    }

    func testWorldWithoutLauncherIsLocal() throws {
        // The test runner is never started by mpirun (and SSKD_MPI is not set in CI).
        XCTAssertFalse(Communicator.wantsMPI)
        XCTAssertTrue(try Communicator.world() === Communicator.local)
    }

    func testReducerBucketsAndSizeOneIsANoOp() throws {
        let ps = try [Tensor.zeros([300]), Tensor.zeros([300]), Tensor.zeros([1000]), Tensor.zeros([10])]
        let r = GradientReducer(communicator: .local, parameters: ps, bucketBytes: 2400)
        // 300 + 300 floats fill 2400 bytes; the 1000-float parameter is larger than a bucket and
        // gets its own; the last one starts a new bucket.
        XCTAssertEqual(r.buckets, [0..<2, 2..<3, 3..<4])
        XCTAssertEqual(r.gradientCount, 1610)
        ps[0].grad = try Tensor.full([300], 2)
        var control: [Float] = [1]
        try r.reduce(localCount: 3, globalCount: 6, control: &control)
        XCTAssertEqual(ps[0].grad?.toArray().first, 2, "one rank: the gradient is already the global one")
        XCTAssertNil(ps[1].grad)
        XCTAssertEqual(control, [1])
    }
}
