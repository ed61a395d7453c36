#if canImport(Glibc)
import Glibc
#endif

/// SIGINT handling for training: the first Ctrl-C asks the loop to stop at the next batch boundary
/// (it then saves a checkpoint and exits cleanly); a second one restores the default action.
public enum Interrupt {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0
    nonisolated(unsafe) private static var installed = false

    /// Whether an interrupt was requested since `install()` or the last `reset()`.
    public static var requested: Bool { flag != 0 }

    public static func install() {
        guard !installed else { return }
        installed = true
        signal(SIGINT) { _ in
            if Interrupt.flag != 0 { signal(SIGINT, SIG_DFL) }
            Interrupt.flag = 1
        }
    }

    /// Clears the request (e.g. after a run stopped) and re-arms the handler.
    public static func reset() {
        flag = 0
        if installed { installed = false; install() }
    }

    /// Marks an interrupt as requested (tests; and the Lua host's own handlers).
    public static func request() { flag = 1 }

    /// Restores the default SIGINT action.
    public static func uninstall() {
        signal(SIGINT, SIG_DFL)
        installed = false
    }
}
