import XCTest
import SSKDTensor
@testable import SSKDData

/// Images and datasets pass the same allocation gate as tensors (`MemoryLimit`).
final class MemoryLimitDataTests: XCTestCase {
    override func tearDown() { MemoryLimit.cap = nil }

    func testImageTransformsRefuseOutputsAboveTheLimit() throws {
        let img = try Image(shape: ImageShape(channels: 1, height: 8, width: 8), pixels: [Float](repeating: 0.5, count: 64))
        // 100000 x 100000 floats: more than any machine here holds.
        assertDataError(["resize"]) { _ = try Resize(100000).apply(img, generator: Generator(seed: 0)) }
        MemoryLimit.cap = MemoryStats.liveBytes + (16 << 20)
        assertDataError(["resize", "SSKD_MAX_MEMORY"]) { _ = try TF.resize(img, height: 4000, width: 4000) }
        assertDataError(["pad", "SSKD_MAX_MEMORY"]) { _ = try TF.pad(img, left: 3000, top: 3000, right: 3000, bottom: 3000) }
        assertDataError(["crop", "SSKD_MAX_MEMORY"]) { _ = try TF.crop(img, top: 0, left: 0, height: 5000, width: 5000) }
        XCTAssertEqual(try TF.resize(img, height: 100, width: 100).shape, ImageShape(channels: 1, height: 100, width: 100))
    }

    func testGzipBombStopsAtTheLimit() throws {
        let dir = try makeTempDir(self)
        let path = dir + "/bomb-images-idx3-ubyte.gz"
        try writeGzip([UInt8](repeating: 0, count: 64 << 20), to: path)   // 64 MiB of zeros in ~64 KiB
        MemoryLimit.cap = MemoryStats.liveBytes + (8 << 20)
        assertDataError([path, "decompressed data passes", "SSKD_MAX_MEMORY"]) { _ = try FileBytes(gzipOrRaw: path) }
        MemoryLimit.cap = nil
        XCTAssertEqual(try FileBytes(gzipOrRaw: path).count, 64 << 20)
    }

    func testDecodedImageAboveTheLimitIsAnErrorBeforeDecoding() throws {
        let dir = try makeTempDir(self)
        let png = dir + "/big.png"
        try ImageCodec.writePNG(try ByteImage(shape: ImageShape(channels: 3, height: 1000, width: 1000), pixels: [UInt8](repeating: 7, count: 3_000_000)), to: png)
        MemoryLimit.cap = MemoryStats.liveBytes + (1 << 20)
        assertDataError(["big.png", "1000x1000", "memory limit"]) { _ = try ImageCodec.decode(path: png) }
        MemoryLimit.cap = nil
        XCTAssertEqual(try ImageCodec.decode(path: png).shape, ImageShape(channels: 3, height: 1000, width: 1000))
    }

    func testBatchSizeNearIntMaxIsOneBatch() throws {
        let ds = MemoryDataset(labels: (0..<10).map { $0 % 3 }, classes: 3)
        for dropLast in [false, true] {
            let loader = try DataLoader(ds, batchSize: Int.max, shuffle: true, dropLast: dropLast, seed: 1)
            XCTAssertEqual(loader.batchCount, dropLast ? 0 : 1)
            if !dropLast { XCTAssertEqual(try loader.batch(epoch: 0, number: 0).indices.count, 10) }
        }
    }
}
