#if canImport(Glibc)
import Glibc
#endif

/// A reference-counted, 64-byte aligned Float32 buffer. Tensors share one when they are views
/// (reshape) of each other. Live bytes are counted so that the Lua host can tell its collector
/// about memory it cannot see, and benchmarks can report the peak.
public final class Storage {
    public let data: UnsafeMutablePointer<Float>
    public let count: Int

    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        var raw: UnsafeMutableRawPointer? = nil
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        // posix_memalign only fails on out-of-memory, where Swift's own allocator would trap too.
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { fatalError("out of memory: \(bytes) bytes") }
        data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { memset(raw, 0, bytes) }
        MemoryStats.allocated(bytes)
    }

    deinit {
        free(data)
        MemoryStats.freed(max(count, 1) * MemoryLayout<Float>.stride)
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
