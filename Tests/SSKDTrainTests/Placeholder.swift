import XCTest
@testable import SSKDTrain

final class SSKDTrainPlaceholderTests: XCTestCase { func testLinks() {} }
