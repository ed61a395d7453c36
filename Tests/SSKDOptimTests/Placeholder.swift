import XCTest
@testable import SSKDOptim

final class SSKDOptimPlaceholderTests: XCTestCase { func testLinks() {} }
