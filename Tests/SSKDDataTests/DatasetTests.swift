import CImageCodecs
import Foundation
import XCTest
@testable import SSKDData

/// The byte the STL-10 test files hold at (image i, channel k, row r, col c).
private func stlValue(_ i: Int, _ k: Int, _ r: Int, _ c: Int) -> UInt8 { UInt8((i * 31 + k * 50 + r * 3 + c * 7) % 256) }

/// Writes `n` STL-10 images in the binary layout: planes R, G, B, each column-major.
private func stlImages(_ n: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: n * 27648)
    for i in 0..<n { for k in 0..<3 { for c in 0..<96 { for r in 0..<96 {
        out[i * 27648 + k * 9216 + c * 96 + r] = stlValue(i, k, r, c)
    } } } }
    return out
}

final class STL10Tests: XCTestCase {
    func writeSTL(_ dir: String, n: Int = 4, labels: [UInt8]? = nil) throws {
        try writeBytes(stlImages(n), to: dir + "/train_X.bin")
        try writeBytes(labels ?? (0..<n).map { UInt8($0 % 10 + 1) }, to: dir + "/train_y.bin")
    }

    func testColumnMajorLayoutAndLabels() throws {
        let dir = try makeTempDir(self)
        try writeSTL(dir, n: 3, labels: [1, 10, 4])
        let ds = try STL10(root: dir, split: .train)
        XCTAssertEqual(ds.count, 3)
        XCTAssertEqual(ds.classNames, STL10.defaultClassNames)
        XCTAssertEqual(try ds.labels(), [0, 9, 3])
        for i in 0..<3 {
            let img = try ds.image(at: i)
            XCTAssertEqual(img.shape, ImageShape(channels: 3, height: 96, width: 96))
            for (k, r, c) in [(0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 5, 90), (2, 95, 3), (2, 17, 95)] {
                XCTAssertEqual(img.pixels[k * 9216 + r * 96 + c], stlValue(i, k, r, c), "image \(i) channel \(k) row \(r) col \(c)")
            }
            // Whole-image check.
            var expected = [UInt8](repeating: 0, count: 27648)
            for k in 0..<3 { for r in 0..<96 { for c in 0..<96 { expected[k * 9216 + r * 96 + c] = stlValue(i, k, r, c) } } }
            XCTAssertEqual(img.pixels, expected)
        }
    }

    func testClassNamesFoldsAndUnlabeled() throws {
        let dir = try makeTempDir(self)
        try writeSTL(dir, n: 12)
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
        try names.joined(separator: "\n").appending("\n").write(toFile: dir + "/class_names.txt", atomically: true, encoding: .utf8)
        var folds = ""
        for k in 0..<10 { folds += "\(k) \(k + 1) \(11 - k)\n" }
        try folds.write(toFile: dir + "/fold_indices.txt", atomically: true, encoding: .utf8)
        try writeBytes(stlImages(5), to: dir + "/unlabeled_X.bin")
        let train = try STL10(root: dir, split: .train)
        XCTAssertEqual(train.classNames, names)
        XCTAssertEqual(try STL10.folds(root: dir)[3], [3, 4, 8])
        let f = try train.fold(2)
        XCTAssertEqual(f.indices, [2, 3, 9])
        XCTAssertEqual(try f.image(at: 2), try train.image(at: 9))
        let un = try STL10(root: dir, split: .unlabeled)
        XCTAssertFalse(un.isLabeled)
        XCTAssertEqual(un.count, 5)
        XCTAssertNil(try un.label(at: 4))
        XCTAssertEqual(try un.image(at: 4).pixels[2 * 9216 + 7 * 96 + 2], stlValue(4, 2, 7, 2))
        assertDataError(["out of range"]) { _ = try un.image(at: 5) }
    }

    func testBadFilesNameTheFileAndFault() throws {
        let dir = try makeTempDir(self)
        // Truncated image file.
        try writeBytes([UInt8](stlImages(2).dropLast(100)), to: dir + "/train_X.bin")
        try writeBytes([1, 2], to: dir + "/train_y.bin")
        assertDataError([dir + "/train_X.bin", "not a multiple of 27648"]) { _ = try STL10(root: dir, split: .train) }
        // Label count mismatch.
        try writeBytes(stlImages(2), to: dir + "/train_X.bin")
        try writeBytes([1, 2, 3], to: dir + "/train_y.bin")
        assertDataError([dir + "/train_y.bin", "3 labels for 2 images"]) { _ = try STL10(root: dir, split: .train) }
        // Labels out of range.
        try writeBytes([1, 11], to: dir + "/train_y.bin")
        assertDataError([dir + "/train_y.bin", "label 11", "outside 1...10"]) { _ = try STL10(root: dir, split: .train) }
        try writeBytes([0, 1], to: dir + "/train_y.bin")
        assertDataError([dir + "/train_y.bin", "label 0"]) { _ = try STL10(root: dir, split: .train) }
        // Missing files.
        assertDataError([dir + "/test_X.bin", "not found"]) { _ = try STL10(root: dir, split: .test) }
        try writeBytes(stlImages(1), to: dir + "/test_X.bin")
        assertDataError([dir + "/test_y.bin", "not found"]) { _ = try STL10(root: dir, split: .test) }
        // Bad class names and folds.
        try writeBytes([1, 2], to: dir + "/train_y.bin")
        try "a\nb\n".write(toFile: dir + "/class_names.txt", atomically: true, encoding: .utf8)
        assertDataError([dir + "/class_names.txt", "expected 10 class names"]) { _ = try STL10(root: dir, split: .train) }
        try FileManager.default.removeItem(atPath: dir + "/class_names.txt")
        try String(repeating: "0 1 x\n", count: 10).write(toFile: dir + "/fold_indices.txt", atomically: true, encoding: .utf8)
        assertDataError([dir + "/fold_indices.txt", "'x'"]) { _ = try STL10.folds(root: dir) }
        try String(repeating: "0 1 7\n", count: 10).write(toFile: dir + "/fold_indices.txt", atomically: true, encoding: .utf8)
        assertDataError(["index 7 out of range"]) { _ = try STL10(root: dir, split: .train).fold(0) }
    }
}

final class IDXTests: XCTestCase {
    func idxFiles(n: Int, h: Int, w: Int) -> (images: [UInt8], labels: [UInt8]) {
        var img = [0, 0, 8, 3] + bigEndian(n) + bigEndian(h) + bigEndian(w)
        img += (0..<(n * h * w)).map { UInt8($0 % 251) }
        let lab = [0, 0, 8, 1] + bigEndian(n) + (0..<n).map { UInt8($0 % 10) }
        return (img.map { UInt8($0) }, lab.map { UInt8($0) })
    }

    func testRawAndGzip() throws {
        let dir = try makeTempDir(self)
        let (img, lab) = idxFiles(n: 7, h: 3, w: 4)
        try writeBytes(img, to: dir + "/raw-images")
        try writeBytes(lab, to: dir + "/raw-labels")
        try writeGzip(img, to: dir + "/images.gz")
        try writeGzip(lab, to: dir + "/labels.gz")
        for (i, l) in [("/raw-images", "/raw-labels"), ("/images.gz", "/labels.gz"), ("/images.gz", "/raw-labels")] {
            let ds = try IDXDataset(images: dir + i, labels: dir + l, classNames: IDXDataset.mnistClassNames)
            XCTAssertEqual(ds.count, 7)
            XCTAssertEqual(ds.imageShape, ImageShape(channels: 1, height: 3, width: 4))
            XCTAssertEqual(try ds.image(at: 2).pixels, (24..<36).map { UInt8($0 % 251) })
            XCTAssertEqual(try ds.labels(), [0, 1, 2, 3, 4, 5, 6])
        }
    }

    func testStandardNamesUnderRoot() throws {
        let dir = try makeTempDir(self)
        let (img, lab) = idxFiles(n: 3, h: 2, w: 2)
        try writeGzip(img, to: dir + "/t10k-images-idx3-ubyte.gz")
        try writeBytes(lab, to: dir + "/t10k-labels-idx1-ubyte")
        let ds = try IDXDataset.mnist(root: dir, train: false)
        XCTAssertEqual(ds.count, 3)
        assertDataError([dir + "/train-images-idx3-ubyte.gz", "not found"]) { _ = try IDXDataset.mnist(root: dir, train: true) }
    }

    func testCorruptFiles() throws {
        let dir = try makeTempDir(self)
        let (img, lab) = idxFiles(n: 5, h: 3, w: 3)
        try writeBytes(lab, to: dir + "/labels")
        // Bad magic.
        var bad = img; bad[3] = 2
        try writeBytes(bad, to: dir + "/images")
        assertDataError([dir + "/images", "bad IDX magic 0x802"]) { _ = try IDXDataset(images: dir + "/images", labels: dir + "/labels", classNames: IDXDataset.mnistClassNames) }
        // Truncated raw pixels.
        try writeBytes(Array(img.dropLast(4)), to: dir + "/images")
        assertDataError([dir + "/images", "truncated"]) { _ = try IDXDataset(images: dir + "/images", labels: dir + "/labels", classNames: IDXDataset.mnistClassNames) }
        // Truncated gzip stream.
        try writeGzip(img, to: dir + "/images.gz")
        let gz = try Data(contentsOf: URL(fileURLWithPath: dir + "/images.gz"))
        try gz.prefix(gz.count - 10).write(to: URL(fileURLWithPath: dir + "/cut.gz"))
        assertDataError([dir + "/cut.gz", "gzip"]) { _ = try IDXDataset(images: dir + "/cut.gz", labels: dir + "/labels", classNames: IDXDataset.mnistClassNames) }
        // Label count and range.
        try writeBytes(img, to: dir + "/images")
        var fewer = lab; fewer[7] = 4
        try writeBytes(Array(fewer.dropLast()), to: dir + "/labels4")
        assertDataError([dir + "/labels4", "4 labels for 5 images"]) { _ = try IDXDataset(images: dir + "/images", labels: dir + "/labels4", classNames: IDXDataset.mnistClassNames) }
        var high = lab; high[10] = 12
        try writeBytes(high, to: dir + "/labels12")
        assertDataError([dir + "/labels12", "label 12"]) { _ = try IDXDataset(images: dir + "/images", labels: dir + "/labels12", classNames: IDXDataset.mnistClassNames) }
        assertDataError([dir + "/missing", "cannot open"]) { _ = try IDXDataset(images: dir + "/missing", labels: dir + "/labels", classNames: IDXDataset.mnistClassNames) }
    }

    /// The real Fashion-MNIST from Debian's dataset-fashion-mnist package.
    func testDebianFashionMNIST() throws {
        let root = IDXDataset.debianFashionMNISTRoot
        try XCTSkipUnless(FileManager.default.fileExists(atPath: root + "/train-images-idx3-ubyte.gz"), "dataset-fashion-mnist not installed")
        let train = try IDXDataset.fashionMNIST(train: true)
        let test = try IDXDataset.fashionMNIST(train: false)
        XCTAssertEqual(train.count, 60000)
        XCTAssertEqual(test.count, 10000)
        XCTAssertEqual(train.imageShape, ImageShape(channels: 1, height: 28, width: 28))
        XCTAssertEqual(try train.classCounts(), [Int](repeating: 6000, count: 10))
        XCTAssertEqual(try test.classCounts(), [Int](repeating: 1000, count: 10))
        XCTAssertEqual(train.classNames[9], "Ankle boot")
        // The first training image is an ankle boot, the first test image too.
        XCTAssertEqual(try train.label(at: 0), 9)
        XCTAssertEqual(try test.label(at: 0), 9)
        XCTAssertEqual(try train.image(at: 0).pixels.count, 784)
    }
}

final class CIFAR10Tests: XCTestCase {
    func record(_ label: UInt8, _ seed: Int) -> [UInt8] { [label] + (0..<3072).map { UInt8(($0 * 3 + seed) % 256) } }

    func testBatchesAndErrors() throws {
        let dir = try makeTempDir(self)
        try writeBytes(record(3, 0) + record(9, 1), to: dir + "/b1.bin")
        try writeBytes(record(0, 2), to: dir + "/b2.bin")
        let ds = try CIFAR10(batchFiles: [dir + "/b1.bin", dir + "/b2.bin"])
        XCTAssertEqual(ds.count, 3)
        XCTAssertEqual(try ds.labels(), [3, 9, 0])
        XCTAssertEqual(try ds.image(at: 2).pixels, Array(record(0, 2).dropFirst()))
        let at: Int = 1024 + 32 * 5 + 7
        let want: Int = (at * 3 + 1) % 256
        XCTAssertEqual(try ds.image(at: 1).pixels[at], UInt8(want))
        try writeBytes(Array(record(1, 0).dropLast()), to: dir + "/short.bin")
        assertDataError([dir + "/short.bin", "not a positive multiple of 3073"]) { _ = try CIFAR10(batchFiles: [dir + "/short.bin"]) }
        try writeBytes(record(1, 0) + record(10, 0), to: dir + "/bad.bin")
        assertDataError([dir + "/bad.bin", "label 10 of record 1"]) { _ = try CIFAR10(batchFiles: [dir + "/bad.bin"]) }
        // The standard layout with meta names.
        for k in 1...5 { try writeBytes(record(UInt8(k), k), to: dir + "/data_batch_\(k).bin") }
        try writeBytes(record(7, 0), to: dir + "/test_batch.bin")
        try (0..<10).map { "n\($0)" }.joined(separator: "\n").write(toFile: dir + "/batches.meta.txt", atomically: true, encoding: .utf8)
        let train = try CIFAR10(root: dir, train: true), test = try CIFAR10(root: dir, train: false)
        XCTAssertEqual(try train.labels(), [1, 2, 3, 4, 5])
        XCTAssertEqual(try test.labels(), [7])
        XCTAssertEqual(train.classNames[4], "n4")
    }
}

final class ImageFolderTests: XCTestCase {
    func pattern(_ shape: ImageShape, _ seed: Int) throws -> ByteImage {
        try ByteImage(shape: shape, pixels: (0..<shape.count).map { UInt8(($0 * 13 + seed * 29) % 256) })
    }

    func testPNGAndJPEGFolders() throws {
        let dir = try makeTempDir(self)
        let fm = FileManager.default
        for c in ["zebra", "ant", "moth"] { try fm.createDirectory(atPath: "\(dir)/\(c)", withIntermediateDirectories: true) }
        let rgb = try pattern(ImageShape(channels: 3, height: 5, width: 6), 1)
        let gray = try pattern(ImageShape(channels: 1, height: 5, width: 6), 2)
        let rgba = try pattern(ImageShape(channels: 4, height: 5, width: 6), 3)
        try ImageCodec.writePNG(rgb, to: "\(dir)/ant/b.png")
        try ImageCodec.writePNG(gray, to: "\(dir)/ant/a.PNG")
        try ImageCodec.writePNG(rgba, to: "\(dir)/moth/x.png")
        // A smooth image so JPEG's loss is small.
        let smooth = try ByteImage(shape: ImageShape(channels: 3, height: 16, width: 16),
                                   pixels: (0..<768).map { (i: Int) -> UInt8 in
                                       let v: Int = (i / 256) * 60 + (i % 16) * 4 + ((i % 256) / 16) * 2
                                       return UInt8(v)
                                   })
        try ImageCodec.writeJPEG(smooth, to: "\(dir)/zebra/z.jpg", quality: 100)
        try "not an image".write(toFile: "\(dir)/zebra/readme.txt", atomically: true, encoding: .utf8)

        let ds = try ImageFolder(root: dir)
        XCTAssertEqual(ds.classNames, ["ant", "moth", "zebra"])
        XCTAssertEqual(ds.count, 4)
        XCTAssertEqual(try ds.labels(), [0, 0, 1, 2])
        XCTAssertEqual(ds.files.map { ($0 as NSString).lastPathComponent }, ["a.PNG", "b.png", "x.png", "z.jpg"])
        // Gray -> RGB repeats the plane; RGB exact; RGBA drops alpha.
        let g3 = try ds.image(at: 0)
        XCTAssertEqual(g3.shape.channels, 3)
        XCTAssertEqual(Array(g3.pixels[0..<30]), gray.pixels)
        XCTAssertEqual(Array(g3.pixels[60..<90]), gray.pixels)
        XCTAssertEqual(try ds.image(at: 1), rgb)
        XCTAssertEqual(try ds.image(at: 2).pixels, Array(rgba.pixels[0..<90]))
        let z = try ds.image(at: 3)
        XCTAssertEqual(z.shape, smooth.shape)
        let maxDiff = zip(z.pixels, smooth.pixels).map { abs(Int($0) - Int($1)) }.max()!
        XCTAssertLessThanOrEqual(maxDiff, 8, "JPEG at quality 100 stays close")

        // Grayscale dataset: RGB converted with PIL's luma weights.
        let g = try ImageFolder(root: dir, channels: 1)
        let l = try g.image(at: 1)
        XCTAssertEqual(l.shape.channels, 1)
        let p = rgb.pixels
        let expected0 = (19595 * UInt32(p[0]) + 38470 * UInt32(p[30]) + 7471 * UInt32(p[60]) + 32768) >> 16
        XCTAssertEqual(l.pixels[0], UInt8(expected0))
        XCTAssertEqual(try g.image(at: 0).pixels, gray.pixels)
        // RGBA dataset keeps alpha.
        XCTAssertEqual(try ImageFolder(root: dir, channels: 4).image(at: 2), rgba)
    }

    func testCorruptFilesFailOrSkip() throws {
        let dir = try makeTempDir(self)
        try FileManager.default.createDirectory(atPath: "\(dir)/a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(dir)/b", withIntermediateDirectories: true)
        let img = try pattern(ImageShape(channels: 3, height: 8, width: 8), 0)
        try ImageCodec.writePNG(img, to: "\(dir)/a/good.png")
        try ImageCodec.writeJPEG(img, to: "\(dir)/b/good.jpg")
        // Garbage with an image extension, a truncated PNG, a truncated JPEG.
        try writeBytes([1, 2, 3, 4, 5, 6, 7, 8, 9], to: "\(dir)/a/garbage.png")
        let png = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/a/good.png"))
        try png.prefix(png.count / 2).write(to: URL(fileURLWithPath: "\(dir)/a/half.png"))
        let jpg = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/b/good.jpg"))
        try jpg.prefix(jpg.count * 2 / 3).write(to: URL(fileURLWithPath: "\(dir)/b/half.jpeg"))

        let strict = try ImageFolder(root: dir)
        XCTAssertEqual(strict.count, 5)
        assertDataError(["\(dir)/a/garbage.png", "not a PNG or JPEG"]) { _ = try strict.image(at: 0) }
        XCTAssertEqual(try strict.image(at: 1), img)
        assertDataError(["\(dir)/a/half.png", "corrupt PNG"]) { _ = try strict.image(at: 2) }
        XCTAssertEqual(try strict.image(at: 3).shape, img.shape)
        assertDataError(["\(dir)/b/half.jpeg", "corrupt JPEG"]) { _ = try strict.image(at: 4) }

        let lenient = try ImageFolder(root: dir, onError: .skip)
        XCTAssertEqual(lenient.count, 2)
        XCTAssertEqual(lenient.skipped.map { ($0.path as NSString).lastPathComponent }.sorted(), ["garbage.png", "half.jpeg", "half.png"])
        XCTAssertEqual(try lenient.labels(), [0, 1])
        XCTAssertEqual(lenient.imageShape, img.shape)

        assertDataError(["\(dir)/nothing", "not found"]) { _ = try ImageFolder(root: "\(dir)/nothing") }
        assertDataError(["\(dir)/a", "no class folders"]) { _ = try ImageFolder(root: "\(dir)/a") }
    }
}
