// File access for the binary formats: whole-file reads, memory maps for the large splits, and
// gzip-or-raw reads through zlib's gz* API (gzread passes uncompressed files through).

import SSKDTensor
import CImageCodecs
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Read-only bytes of a file: either memory-mapped (never copied into RAM; pages are read
/// by the kernel on demand) or owned in memory.
public final class FileBytes: @unchecked Sendable {
    public let path: String
    public let count: Int
    public let bytes: UnsafePointer<UInt8>
    private let mapped: Bool

    /// Memory-maps `path` read-only.
    public init(mapping path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DataError(path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw DataError(path, "cannot stat: \(String(cString: strerror(errno)))") }
        let size = Int(st.st_size)
        self.path = path
        self.count = size
        self.mapped = true
        if size == 0 {
            // mmap of length 0 fails; an empty file still has a valid (empty) view.
            self.bytes = UnsafePointer(UnsafeMutablePointer<UInt8>.allocate(capacity: 1))
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw DataError(path, "cannot memory-map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        self.bytes = UnsafePointer(p.assumingMemoryBound(to: UInt8.self))
    }

    /// Reads `path` into memory.
    public init(reading path: String) throws {
        guard let f = fopen(path, "rb") else { throw DataError(path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { fclose(f) }
        var st = stat()
        guard fstat(fileno(f), &st) == 0 else { throw DataError(path, "cannot stat: \(String(cString: strerror(errno)))") }
        let size = Int(st.st_size)
        do { try MemoryLimit.check(count: max(size, 1), elementSize: 1, op: "read") } catch { throw DataError(path, "\(error)") }
        let buf = UnsafeMutablePointer<UInt8>.allocate(capacity: max(size, 1))
        let got = size > 0 ? fread(buf, 1, size, f) : 0
        guard got == size else {
            buf.deallocate()
            throw DataError(path, "short read: \(got) of \(size) bytes")
        }
        self.path = path
        self.count = size
        self.bytes = UnsafePointer(buf)
        self.mapped = false
    }

    /// Reads `path` through zlib: gzip-compressed files are inflated, others read as they are.
    /// A truncated or corrupt gzip stream is an error naming the file.
    public init(gzipOrRaw path: String) throws {
        guard let gz = gzopen(path, "rb") else { throw DataError(path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { gzclose(gz) }
        gzbuffer(gz, 1 << 17)
        var cap = 1 << 20, size = 0
        var buf = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
        while true {
            if size == cap {
                // A gzip bomb stops here with an error, not in the allocator.
                do { try MemoryLimit.check(count: cap * 2, elementSize: 1, op: "gunzip") } catch {
                    buf.deallocate()
                    throw DataError(path, "decompressed data passes \(MemoryLimit.format(cap)): \(error)")
                }
                let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: cap * 2)
                bigger.update(from: buf, count: size)
                buf.deallocate()
                buf = bigger
                cap *= 2
            }
            let want = min(cap - size, Int(Int32.max))
            let n = gzread(gz, buf + size, UInt32(want))
            if n < 0 {
                var code: Int32 = 0
                let msg = gzerror(gz, &code).map { String(cString: $0) } ?? "unknown error"
                buf.deallocate()
                throw DataError(path, "corrupt gzip data: \(msg)")
            }
            if n == 0 {
                // gzread returns 0 at EOF; a stream cut short reports Z_BUF_ERROR here.
                var code: Int32 = 0
                let msg = gzerror(gz, &code).map { String(cString: $0) } ?? ""
                if code != Z_OK {
                    buf.deallocate()
                    throw DataError(path, "truncated or corrupt gzip data: \(msg)")
                }
                break
            }
            size += Int(n)
        }
        self.path = path
        self.count = size
        self.bytes = UnsafePointer(buf)
        self.mapped = false
    }

    deinit {
        if mapped && count > 0 {
            munmap(UnsafeMutableRawPointer(mutating: bytes), count)
        } else {
            UnsafeMutablePointer(mutating: bytes).deallocate()
        }
    }

    @inline(__always) public subscript(i: Int) -> UInt8 { bytes[i] }

    /// Big-endian 32-bit word at byte offset `at`.
    @inline(__always) func bigEndianUInt32(at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }
}

/// The lines of a text file, without empty trailing lines.
func readLines(_ path: String) throws -> [String] {
    // Our own reader: Foundation's leaks a buffer on empty files (fuzz harnesses, LeakSanitizer).
    let file = try FileBytes(reading: path)
    guard let text = String(validating: UnsafeBufferPointer(start: file.bytes, count: file.count), as: UTF8.self) else {
        throw DataError(path, "not UTF-8 text")
    }
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
        $0.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    while lines.last == "" { lines.removeLast() }
    return lines
}

func fileExists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

func joinPath(_ a: String, _ b: String) -> String { a.hasSuffix("/") ? a + b : a + "/" + b }
