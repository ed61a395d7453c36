import XCTest
@testable import SSKDLua

final class SSKDLuaPlaceholderTests: XCTestCase { func testLinks() {} }
