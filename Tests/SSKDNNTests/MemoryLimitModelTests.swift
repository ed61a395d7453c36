import XCTest
import SSKDTensor
@testable import SSKDNN

/// Model construction passes the allocation gate: a model the machine or `SSKD_MAX_MEMORY` cannot
/// hold is an error naming the argument, not an abort.
final class MemoryLimitModelTests: XCTestCase {
    override func tearDown() { MemoryLimit.cap = nil }

    func testHugeClassCountNamesTheArgument() {
        assertErrorContains(["MobileNetV2", "classes 1000000000"]) { try MobileNetV2(.init(classes: 1_000_000_000), initialize: false) }
        assertErrorContains(["EfficientNet", "classes 1000000000"]) { try EfficientNet(.variant(0, classes: 1_000_000_000), initialize: false) }
        assertErrorContains(["Linear", "out_features 1073741824"]) { try Linear(1 << 20, 1 << 30) }
        assertErrorContains(["Conv2d", "kernel_size"]) { try Conv2d(3, 8, kernelSize: [1 << 31]) }
    }

    func testModelAboveTheUserCapIsAnError() throws {
        MemoryLimit.cap = MemoryStats.liveBytes + (4 << 20)    // MobileNetV2 holds ~14 MB of weights
        assertErrorContains(["SSKD_MAX_MEMORY"]) { try MobileNetV2(.init(classes: 10), initialize: false) }
        MemoryLimit.cap = nil
        XCTAssertGreaterThan(try MobileNetV2(.init(classes: 10), initialize: false).parameters().count, 0)
    }
}
