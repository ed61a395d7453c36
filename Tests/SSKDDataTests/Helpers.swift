import CImageCodecs
import Foundation
import XCTest
@testable import SSKDData

/// A fresh temporary directory, removed at the end of the test.
func makeTempDir(_ test: XCTestCase) throws -> String {
    let dir = NSTemporaryDirectory() + "sskd-data-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Writes `bytes` gzip-compressed with zlib's gz* API.
func writeGzip(_ bytes: [UInt8], to path: String) throws {
    guard let gz = gzopen(path, "wb") else { throw DataError(path, "gzopen failed") }
    let n = bytes.withUnsafeBufferPointer { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
    gzclose(gz)
    guard n == bytes.count else { throw DataError(path, "gzwrite wrote \(n)") }
}

func bigEndian(_ v: Int) -> [UInt8] { [UInt8((v >> 24) & 255), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)] }

/// Asserts `body` throws a DataError whose text contains every one of `parts`.
func assertDataError(_ parts: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error containing \(parts)", file: file, line: line)
    } catch {
        let text = "\(error)"
        for p in parts where !text.contains(p) {
            XCTFail("error '\(text)' does not contain '\(p)'", file: file, line: line)
        }
    }
}

/// A small labelled in-memory dataset for subset and loader tests: image i is 1x4x5 filled with
/// i % 256 (and a ramp so flips show), label `labels[i]`.
final class MemoryDataset: Dataset {
    let name = "memory"
    let labelsArray: [Int]
    let classNames: [String]
    var failAt: Int? = nil
    /// Number of `image(at:)` calls (to check how far the loader runs ahead).
    private let lock = NSLock()
    private var _reads = 0
    var reads: Int { lock.lock(); defer { lock.unlock() }; return _reads }
    init(labels: [Int], classes: Int) {
        labelsArray = labels
        classNames = (0..<classes).map { "c\($0)" }
    }
    var count: Int { labelsArray.count }
    var imageShape: ImageShape? { ImageShape(channels: 1, height: 4, width: 5) }
    var isLabeled: Bool { true }
    func image(at index: Int) throws -> ByteImage {
        try checkIndex(index)
        lock.lock(); _reads += 1; lock.unlock()
        if index == failAt { throw DataError("memory", "image \(index) is broken") }
        let px = (0..<20).map { UInt8((index * 7 + $0 * 3) % 256) }
        return try ByteImage(shape: imageShape!, pixels: px)
    }
    func label(at index: Int) throws -> Int? { try checkIndex(index); return labelsArray[index] }
}
