// Content fingerprints: SHA-256 (OpenSSL's libcrypto) over exactly the bytes that decide a
// result, so that a cache can tell "the same data / weights" from "something else with the same
// name". Hex digests, lowercase, 64 characters.
//
//   dataset     count, class names, then per image in index order: C, H, W, pixel bytes, label
//   state dict  per entry in order: name, dtype, shape, float32 values

import COpenSSL
import Foundation
import SSKDData
import SSKDNN
import SSKDTensor

/// An incremental SHA-256.
public final class SHA256 {
    private let ctx: OpaquePointer

    public init() {
        // Allocation of a digest context fails only when the process is out of memory.
        guard let c = EVP_MD_CTX_new(), EVP_DigestInit_ex(c, EVP_sha256(), nil) == 1 else {
            fatalError("SHA256: OpenSSL could not set up a SHA-256 context")
        }
        ctx = c
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(ctx, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }
    public func update(_ s: String) { update(Array(s.utf8)) }
    /// Integers as 8 little-endian bytes (so that field boundaries are unambiguous).
    public func update(_ v: Int) { withUnsafeBytes(of: Int64(v).littleEndian) { update($0) } }
    /// A length-prefixed string (no two field sequences hash alike).
    public func update(field s: String) { let u = Array(s.utf8); update(u.count); update(u) }

    /// The digest as 64 lowercase hex characters; the hasher must not be used afterwards.
    public func hexDigest() -> String {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var n: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &out, &n)
        return out.prefix(Int(n)).map { String(format: "%02x", $0) }.joined()
    }

    /// SHA-256 of a string's UTF-8 bytes.
    public static func hex(_ s: String) -> String { let h = SHA256(); h.update(s); return h.hexDigest() }

    /// SHA-256 of a byte buffer.
    public static func hex(_ bytes: UnsafeRawBufferPointer) -> String { let h = SHA256(); h.update(bytes); return h.hexDigest() }
}

public enum Fingerprint {
    /// The images and labels of `ds` in index order (not its name or where it came from: a
    /// subset and a file holding the same images in the same order hash alike).
    public static func dataset(_ ds: Dataset) throws -> String {
        let h = SHA256()
        h.update(field: "sskd-dataset-1")
        h.update(ds.count)
        h.update(ds.classNames.count)
        for n in ds.classNames { h.update(field: n) }
        for i in 0..<ds.count {
            let img = try ds.image(at: i)
            h.update(img.shape.channels); h.update(img.shape.height); h.update(img.shape.width)
            h.update(img.pixels)
            h.update(try ds.label(at: i) ?? -1)
        }
        return h.hexDigest()
    }

    /// A quick check that two datasets are the same: the count, class names, every label and
    /// `images` images evenly spaced over the index range (all of them in a smaller dataset).
    /// Ranks compare it before training together; decoding 100000 images each would take minutes.
    public static func datasetSample(_ ds: Dataset, images: Int = 256) throws -> String {
        let h = SHA256()
        h.update(field: "sskd-dataset-sample-1")
        h.update(ds.count)
        h.update(ds.classNames.count)
        for n in ds.classNames { h.update(field: n) }
        if ds.isLabeled { for i in 0..<ds.count { h.update(try ds.label(at: i) ?? -1) } }
        let k = min(images, ds.count)
        for j in 0..<k {
            let i = k == ds.count ? j : j * ds.count / k
            let img = try ds.image(at: i)
            h.update(i)
            h.update(img.shape.channels); h.update(img.shape.height); h.update(img.shape.width)
            h.update(img.pixels)
        }
        return h.hexDigest()
    }

    /// Names, dtypes, shapes and values of every entry in order (not the metadata).
    public static func stateDict(_ sd: StateDict) -> String {
        let h = SHA256()
        h.update(field: "sskd-state-dict-1")
        h.update(sd.count)
        for (key, t) in sd {
            h.update(field: key)
            h.update(field: sd.dtype(key).rawValue)
            h.update(t.shape.count)
            for d in t.shape { h.update(d) }
            h.update(UnsafeRawBufferPointer(start: t.data, count: t.count * MemoryLayout<Float>.stride))
        }
        return h.hexDigest()
    }
}
