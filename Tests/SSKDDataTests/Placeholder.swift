import XCTest
@testable import SSKDData

final class SSKDDataPlaceholderTests: XCTestCase { func testLinks() {} }
