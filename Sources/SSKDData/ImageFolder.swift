// Image folders: root/<class>/*.{png,jpg,jpeg}, decoded with libpng and libjpeg.
//
// Classes are the sub-directories of root in sorted order (like torchvision's ImageFolder);
// files within a class are sorted by name. Images are decoded on each access (bounded memory)
// and converted to the requested channel count.

import CImageDecode
import Foundation
import SSKDTensor

/// Decodes and encodes PNG/JPEG files (libpng's simplified API, libjpeg behind a C error manager).
public enum ImageCodec {
    /// Decodes a PNG or JPEG file (chosen by its signature, not its extension) to a ByteImage with
    /// the channels as stored (1, 3 or 4), or converted to `channels` when given.
    public static func decode(path: String, channels: Int? = nil) throws -> ByteImage {
        guard let f = fopen(path, "rb") else { throw DataError(path, "cannot open: \(String(cString: strerror(errno)))") }
        var sig = [UInt8](repeating: 0, count: 8)
        let n = fread(&sig, 1, 8, f)
        fclose(f)
        let isPNG = n == 8 && sig == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        let isJPEG = n >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF
        guard isPNG || isJPEG else { throw DataError(path, "not a PNG or JPEG file (unknown signature)") }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        // The decoded bytes and the planar copy of them both pass the memory gate.
        let limit = MemoryLimit.largestRequest / 2
        let status = isPNG ? sskd_png_decode(path, limit, &out, &w, &h, &c, &err, err.count)
                           : sskd_jpeg_decode(path, limit, &out, &w, &h, &c, &err, err.count)
        guard status == 0, let buf = out else {
            throw DataError(path, "corrupt \(isPNG ? "PNG" : "JPEG"): \(String(cString: err))")
        }
        defer { sskd_image_free(buf) }
        let img = try ByteImage(interleaved: UnsafeBufferPointer(start: buf, count: Int(w) * Int(h) * Int(c)),
                                height: Int(h), width: Int(w), channels: Int(c))
        if let ch = channels { return try img.converted(toChannels: ch) }
        return img
    }

    /// Writes `image` (1, 3 or 4 channels) as a PNG file.
    public static func writePNG(_ image: ByteImage, to path: String) throws {
        var err = [CChar](repeating: 0, count: 256)
        let hwc = image.interleaved
        guard sskd_png_encode(path, hwc, Int32(image.shape.width), Int32(image.shape.height), Int32(image.shape.channels), &err, err.count) == 0 else {
            throw DataError(path, "cannot write PNG: \(String(cString: err))")
        }
    }

    /// Writes `image` (1 or 3 channels) as a JPEG file.
    public static func writeJPEG(_ image: ByteImage, to path: String, quality: Int = 95) throws {
        var err = [CChar](repeating: 0, count: 256)
        let hwc = image.interleaved
        guard sskd_jpeg_encode(path, hwc, Int32(image.shape.width), Int32(image.shape.height), Int32(image.shape.channels),
                               Int32(quality), &err, err.count) == 0 else {
            throw DataError(path, "cannot write JPEG: \(String(cString: err))")
        }
    }
}

/// `root/<class>/*.{png,jpg,jpeg}` as a labelled dataset.
public final class ImageFolder: Dataset {
    /// What to do with a file that cannot be decoded.
    public enum OnError: String, Sendable {
        /// Throw an error naming the file.
        case fail
        /// Drop the file at open time with a warning on stderr (every file is decoded once to check).
        case skip
    }

    public static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    public let root: String
    public let name: String
    public let classNames: [String]
    public let channels: Int
    /// The image files in index order.
    public let files: [String]
    private let fileLabels: [Int]
    public let imageShape: ImageShape?
    /// Files dropped as corrupt (with `.skip`), with the reason.
    public let skipped: [(path: String, reason: String)]

    public var count: Int { files.count }
    public let isLabeled: Bool

    /// Lists `root`'s class folders and their images. With `onError: .skip` every image is
    /// decoded once now, and corrupt ones are left out with a warning; with `.fail` (the default)
    /// a corrupt image is an error when it is read.
    ///
    /// With `labeled: false` the folder holds images without classes: every image in `root` and
    /// in its sub-folders at any depth (sorted by path), as an unlabeled dataset.
    public init(root: String, channels: Int = 3, onError: OnError = .fail, labeled: Bool = true) throws {
        guard [1, 3, 4].contains(channels) else { throw DataError(root, "channels must be 1, 3 or 4, got \(channels)") }
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw DataError(root, "image folder root not found or not a directory")
        }
        func isImage(_ f: String) -> Bool { ImageFolder.extensions.contains((f as NSString).pathExtension.lowercased()) }
        // (folder, label) pairs to list: the class folders, or every image under root.
        var groups: [(dir: String, names: [String], label: Int)] = []
        var classes = [String]()
        if labeled {
            let entries = try fm.contentsOfDirectory(atPath: root).sorted()
            for e in entries where !e.hasPrefix(".") {
                var d: ObjCBool = false
                if fm.fileExists(atPath: joinPath(root, e), isDirectory: &d), d.boolValue { classes.append(e) }
            }
            guard !classes.isEmpty else { throw DataError(root, "no class folders (expected root/<class>/*.png|jpg|jpeg)") }
            for (k, cls) in classes.enumerated() {
                let dir = joinPath(root, cls)
                groups.append((dir, try fm.contentsOfDirectory(atPath: dir).sorted(), k))
            }
        } else {
            guard let walker = fm.enumerator(atPath: root) else { throw DataError(root, "cannot list the folder") }
            var rel = [String]()
            while let f = walker.nextObject() as? String {
                if (f as NSString).lastPathComponent.hasPrefix(".") { continue }
                if isImage(f) { rel.append(f) }
            }
            groups.append((root, rel.sorted(), -1))
        }
        var files = [String](), labels = [Int](), skipped = [(path: String, reason: String)]()
        var shapes = Set<ImageShape>()
        for (dir, names, k) in groups {
            for f in names where !f.hasPrefix(".") && isImage(f) {
                let path = joinPath(dir, f)
                if onError == .skip {
                    do {
                        let img = try ImageCodec.decode(path: path, channels: channels)
                        shapes.insert(img.shape)
                    } catch {
                        let reason = (error as? DataError)?.message ?? "\(error)"
                        FileHandle.standardError.write("warning: skipping \(path): \(reason)\n".data(using: .utf8)!)
                        skipped.append((path, reason))
                        continue
                    }
                }
                files.append(path)
                labels.append(k)
            }
        }
        guard !files.isEmpty else { throw DataError(root, labeled ? "no .png/.jpg/.jpeg images in the class folders" : "no .png/.jpg/.jpeg images") }
        self.root = root
        self.isLabeled = labeled
        self.name = "folder \(root)"
        self.classNames = classes
        self.channels = channels
        self.files = files
        self.fileLabels = labels
        self.skipped = skipped
        if onError == .skip {
            self.imageShape = shapes.count == 1 ? shapes.first : nil
        } else {
            // Shape known only if the folder is uniform; without decoding all, we do not know.
            self.imageShape = nil
        }
    }

    public func image(at index: Int) throws -> ByteImage {
        try checkIndex(index)
        return try ImageCodec.decode(path: files[index], channels: channels)
    }

    public func label(at index: Int) throws -> Int? {
        try checkIndex(index)
        return isLabeled ? fileLabels[index] : nil
    }
}
