import COpenBLAS
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Thread settings shared by our kernels and OpenBLAS.
///
/// One parallel-for serves the elementwise and reduction kernels. Work is split into chunks whose
/// boundaries depend only on the problem size (never on the thread count), so results, including
/// floating-point reductions, are identical whatever the number of threads.
public enum Runtime {
    nonisolated(unsafe) private static var _threads: Int = {
        let env = getenv("SSKD_THREADS").flatMap { Int(String(cString: $0)) }
        let n = max(1, env ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        openblas_set_num_threads(Int32(n))
        return n
    }()

    /// Worker threads for our kernels and for OpenBLAS (default: `SSKD_THREADS`, else the core count).
    public static var threads: Int { _threads }

    /// Sets the thread count of our kernels and of OpenBLAS.
    public static func setThreads(_ n: Int) throws {
        guard n >= 1 && n <= 1024 else { throw TensorError("set_num_threads", "thread count must be in 1...1024, got \(n)") }
        _threads = n
        openblas_set_num_threads(Int32(n))
    }

    /// Ensures OpenBLAS has been told the thread count before its first call.
    @inline(__always) static func ensureInitialised() { _ = _threads }
}

/// Runs `body` over `0..<count` split into chunks of at least `grain` items, on up to
/// `Runtime.threads` threads. Chunk boundaries depend only on `count` and `grain`.
@inline(__always)
public func parallelFor(_ count: Int, grain: Int = 32768, _ body: (Range<Int>) -> Void) {
    if count <= 0 { return }
    let threads = Runtime.threads
    if threads == 1 || count <= grain {
        body(0..<count)
        return
    }
    let chunks = (count + grain - 1) / grain
    let per = grain
    let grad = GradMode.isEnabled
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            if GradMode.isEnabled != grad { GradMode.isEnabled = grad }
            let lo = c * per, hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }
}

/// Runs `body(i)` for each of `count` independent tasks (for example one per image or channel).
/// Use for coarse tasks; each task should be sizeable.
@inline(__always)
public func parallelTasks(_ count: Int, _ body: (Int) -> Void) {
    if count <= 0 { return }
    if Runtime.threads == 1 || count == 1 {
        for i in 0..<count { body(i) }
        return
    }
    let grad = GradMode.isEnabled
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: count) { i in
            if GradMode.isEnabled != grad { GradMode.isEnabled = grad }
            body(i)
        }
    }
}
