import XCTest
@testable import SSKDTensor

/// The one allocation gate (`MemoryLimit`): sizes that overflow, exceed the machine or exceed the
/// user's cap are errors naming the op before anything is allocated.
final class MemoryLimitTests: XCTestCase {
    override func tearDown() { MemoryLimit.cap = nil }

    /// assertTensorError, then every further fragment in the message.
    func assertThrows<T>(_ op: String, _ parts: [String], line: UInt = #line, _ body: () throws -> T) {
        guard let e = assertTensorError(op, line: line, body) else { return }
        for p in parts { XCTAssertTrue(e.message.contains(p), "'\(p)' not in: \(e)", line: line) }
    }

    func testParseBytes() {
        XCTAssertEqual(MemoryLimit.parseBytes("512M"), 512 << 20)
        XCTAssertEqual(MemoryLimit.parseBytes("2G"), 2 << 30)
        XCTAssertEqual(MemoryLimit.parseBytes("1.5GiB"), 3 << 29)
        XCTAssertEqual(MemoryLimit.parseBytes("300 MB"), 300 << 20)
        XCTAssertEqual(MemoryLimit.parseBytes("4096"), 4096)
        XCTAssertEqual(MemoryLimit.parseBytes("64k"), 64 << 10)
        for bad in ["", "G", "-1G", "1X", "nan", "1e400", "0"] { XCTAssertNil(MemoryLimit.parseBytes(bad), bad) }
    }

    func testCheckedCountRejectsOverflowNegativeAndHugeDimensions() {
        assertThrows("conv2d", ["too large"]) { try MemoryLimit.checkedCount([1, 4, 2_000_000_007, 2_000_000_007], op: "conv2d") }
        assertThrows("x", ["negative dimension -5"]) { try MemoryLimit.checkedCount([2, -5], op: "x") }
        assertThrows("x", ["dimension 4611686018427387904", "too large"]) { try MemoryLimit.checkedCount([0, 1 << 62], op: "x") }
        assertThrows("x", ["too large"]) { try MemoryLimit.checkedCount([1 << 30, 1 << 30, 4], op: "x") }
        XCTAssertEqual(try MemoryLimit.checkedCount([0, 1 << 40], op: "x"), 0)
        XCTAssertEqual(try MemoryLimit.checkedCount([], op: "x"), 1)
    }

    func testRequestAboveThePhysicalMemoryIsAnError() throws {
        try XCTSkipIf(MemoryLimit.physicalBytes == 0, "sysconf reports no physical memory size")
        let floats = MemoryLimit.physicalBytes / 4 + 1
        assertThrows("zeros", ["more than this machine's memory"]) { try Tensor.zeros([floats]) }
        // Internal allocations (an op's output) go through the same gate.
        let x = try Tensor.zeros([1, 1])
        assertThrows("expand", []) { try x.expand([floats, 1]).contiguous().clone() }
    }

    func testUserCapCountsLiveTensorsAndNamesTheVariable() throws {
        let held = try Tensor.zeros([1 << 20])           // 4 MiB alive while the cap is set
        MemoryLimit.cap = MemoryStats.liveBytes + (12 << 20)
        let ok = try Tensor.zeros([1 << 20])             // 4 MiB more: within the cap
        assertThrows("ones", ["SSKD_MAX_MEMORY", "already held by tensors"]) { try Tensor.ones([3 << 20]) }
        // Ops refuse their outputs too, and the host can go on afterwards.
        assertThrows("matmul", ["SSKD_MAX_MEMORY"]) { try Tensor.randn([1 << 10, 1 << 10]).matmul(Tensor.randn([1 << 10, 1 << 10])) }
        XCTAssertEqual(try (ok + held).sum().item(), 0)
        MemoryLimit.cap = nil
        XCTAssertEqual(try Tensor.ones([3 << 20]).count, 3 << 20)
    }

    func testLargestRequestFollowsTheCap() {
        MemoryLimit.cap = MemoryStats.liveBytes + 1000
        XCTAssertEqual(MemoryLimit.largestRequest, 1000)
        MemoryLimit.cap = 0
        XCTAssertEqual(MemoryLimit.largestRequest, 0)
    }
}
