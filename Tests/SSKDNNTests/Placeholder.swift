import XCTest
@testable import SSKDNN

final class SSKDNNPlaceholderTests: XCTestCase { func testLinks() {} }
