#if canImport(Glibc)
import Glibc
#endif

/// A reference-counted, 64-byte aligned Float32 buffer. Tensors share one when they are views
/// (reshape) of each other. Live bytes are counted so that the Lua host can tell its collector
/// about memory it cannot see, and benchmarks can report the peak.
public final class Storage {
    public let data: UnsafeMutablePointer<Float>
    public let count: Int

    /// Allocates `count` floats for op `op` (named in the error), after `MemoryLimit.check`: a
    /// request the machine or the user's cap cannot hold throws instead of reaching the allocator.
    public init(count: Int, zeroed: Bool = true, op: String = "tensor") throws {
        let bytes = try MemoryLimit.check(count: max(count, 1), elementSize: MemoryLayout<Float>.stride, op: op)
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            throw TensorError(op, "out of memory: the allocator refused \(MemoryLimit.format(bytes))")
        }
        self.count = count
        data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { memset(raw, 0, bytes) }
        MemoryStats.allocated(bytes)
    }

    deinit {
        free(data)
        MemoryStats.freed(max(count, 1) * MemoryLayout<Float>.stride)
    }
}

/// The one gate every tensor and image buffer passes before it is allocated.
///
/// A request is refused with a `TensorError` naming the op when it is larger than the machine's
/// physical memory, or when it would take the bytes held by tensors above the user's cap
/// (`SSKD_MAX_MEMORY`, e.g. `512M`, `2G`, `1.5GiB` or a byte count). Sizes are computed with
/// overflow checks first (`checkedCount`), so no size from a script or a file reaches Swift's
/// allocation trap.
public enum MemoryLimit {
    /// The most elements one tensor or image may have (2^40, 4 TiB of floats): any dimension or
    /// element count above it is an error before anything else is computed from it. Products of
    /// two such values still fit in an Int.
    public static let maxElements = 1 << 40

    /// Bytes of physical memory (0 when unknown).
    public static let physicalBytes: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && size > 0 ? pages * size : 0
    }()

    /// The user's cap on bytes held by tensors (from `SSKD_MAX_MEMORY`; nil: none). Settable for
    /// tests and the fuzzer. An unparseable `SSKD_MAX_MEMORY` counts as unset; `sskd` reports it.
    nonisolated(unsafe) public static var cap: Int? = {
        guard let raw = getenv("SSKD_MAX_MEMORY") else { return nil }
        return parseBytes(String(cString: raw))
    }()

    /// What is wrong with `SSKD_MAX_MEMORY`, when it is set but cannot be read (nil otherwise).
    public static var environmentProblem: String? {
        guard let raw = getenv("SSKD_MAX_MEMORY") else { return nil }
        let text = String(cString: raw)
        return parseBytes(text) == nil ? "SSKD_MAX_MEMORY='\(text)' is not a size (e.g. 512M, 2G, 1.5GiB or a byte count)" : nil
    }

    /// `512M`, `2G`, `1.5GiB`, `300MB`, `1048576` -> bytes (powers of 1024; nil when malformed).
    public static func parseBytes(_ text: String) -> Int? {
        var digits = "", unit = ""
        for ch in text.uppercased() where ch != " " && ch != "\t" {
            if unit.isEmpty && (ch.isNumber || ch == ".") { digits.append(ch) } else { unit.append(ch) }
        }
        guard let v = Double(digits), v.isFinite, v > 0 else { return nil }
        let scale: Double
        switch unit {
        case "", "B": scale = 1
        case "K", "KB", "KIB": scale = 1024
        case "M", "MB", "MIB": scale = 1_048_576
        case "G", "GB", "GIB": scale = 1_073_741_824
        case "T", "TB", "TIB": scale = 1_099_511_627_776
        default: return nil
        }
        let bytes = v * scale
        return bytes < Double(Int.max / 2) && bytes >= 1 ? Int(bytes) : nil
    }

    /// `12.3 GiB`, `512 MiB`, `4 KiB`, `100 bytes`.
    public static func format(_ bytes: Int) -> String {
        let b = Double(bytes)
        if b >= Double(1 << 30) { return String(format1(b / Double(1 << 30))) + " GiB" }
        if b >= Double(1 << 20) { return String(format1(b / Double(1 << 20))) + " MiB" }
        if b >= 1024 { return String(format1(b / 1024)) + " KiB" }
        return "\(bytes) bytes"
    }
    private static func format1(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    /// The number of elements of `shape`, checked: no negative dimension, none and no product
    /// above `maxElements`. `what` names the shape in the error (e.g. "output shape").
    public static func checkedCount(_ shape: [Int], op: String, what: String = "shape") throws -> Int {
        var total = 1
        for d in shape {
            guard d >= 0 else { throw TensorError(op, "negative dimension \(d) in \(what) \(fmt(shape))") }
            guard d <= maxElements else { throw TensorError(op, "dimension \(d) in \(what) \(fmt(shape)) is too large (at most 2^40)") }
        }
        for d in shape {
            let (m, o) = total.multipliedReportingOverflow(by: d)
            guard !o && m <= maxElements else { throw TensorError(op, "\(what) \(fmt(shape)) is too large (more than 2^40 elements)") }
            total = m
        }
        return total
    }

    /// The largest single request `check` would grant now (bytes).
    public static var largestRequest: Int {
        var limit = physicalBytes > 0 ? physicalBytes : maxElements * 8
        if let cap = cap { limit = Swift.min(limit, Swift.max(0, cap - MemoryStats.liveBytes)) }
        return limit
    }

    /// Throws unless `count` elements of `elementSize` bytes can be allocated; returns the bytes.
    @discardableResult
    public static func check(count: Int, elementSize: Int, op: String) throws -> Int {
        guard count >= 0, count <= maxElements else { throw TensorError(op, "\(count) elements is too many (at most 2^40)") }
        let bytes = count * elementSize  // <= 2^40 * 8: no overflow
        if physicalBytes > 0 && bytes > physicalBytes {
            throw TensorError(op, "needs \(format(bytes)), more than this machine's memory (\(format(physicalBytes)))")
        }
        if let cap = cap {
            let live = MemoryStats.liveBytes
            if live + bytes > cap {
                throw TensorError(op, "needs \(format(bytes)) with \(format(live)) already held by tensors, more than SSKD_MAX_MEMORY allows (\(format(cap)))")
            }
        }
        return bytes
    }
}

/// Bytes held by live tensor storages (process-wide), and the high-water mark.
public enum MemoryStats {
    private static var lock = pthread_mutex_t()
    private static let initialised: Bool = { pthread_mutex_init(&lock, nil); return true }()
    nonisolated(unsafe) private static var _live = 0
    nonisolated(unsafe) private static var _peak = 0
    nonisolated(unsafe) private static var _total = 0

    static func allocated(_ bytes: Int) {
        _ = initialised
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        _live += bytes; _total += bytes
        if _live > _peak { _peak = _live }
    }
    static func freed(_ bytes: Int) {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        _live -= bytes
    }
    /// Bytes currently held by tensors.
    public static var liveBytes: Int { _ = initialised; pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return _live }
    /// The largest `liveBytes` seen since start or the last `resetPeak()`.
    public static var peakBytes: Int { _ = initialised; pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return _peak }
    /// Bytes ever allocated (monotonic); the Lua host steps its collector by the difference.
    public static var totalAllocatedBytes: Int { _ = initialised; pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return _total }
    public static func resetPeak() { _ = initialised; pthread_mutex_lock(&lock); _peak = _live; pthread_mutex_unlock(&lock) }
}
