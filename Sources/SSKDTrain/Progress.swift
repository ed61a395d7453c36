import Foundation

/// Training progress: a live bar redrawn in place on a terminal (batch i/n, images/s, loss, ETA),
/// and only the one-line epoch summaries otherwise (logs, pipes, CI).
public final class Progress {
    public let live: Bool
    private var start = Date()
    private var lastDraw = Date.distantPast
    private let out: FileHandle

    public init(live: Bool? = nil, out: FileHandle = .standardError) {
        self.out = out
        self.live = live ?? (isatty(out.fileDescriptor) != 0 && ProcessInfo.processInfo.environment["CI"] == nil)
    }

    public func beginEpoch() { start = Date(); lastDraw = .distantPast }

    /// Redraws the bar at most 10 times a second (`loss` nil: none shown, e.g. for inference).
    public func batch(_ label: String, _ i: Int, of n: Int, images: Int, loss: Double?) {
        guard live else { return }
        let now = Date()
        guard i == n || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(images) / elapsed : 0
        let eta = i > 0 ? elapsed / Double(i) * Double(n - i) : 0
        let width = 24
        let filled = n > 0 ? min(width, i * width / n) : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let lossText = loss.map { String(format: "  loss %.4f", $0) } ?? ""
        let text = String(format: "\r%@ [%@] %d/%d  %.0f img/s%@  ETA %@\u{1B}[K", label, bar, i, n, rate, lossText, Progress.clock(eta))
        out.write(Data(text.utf8))
    }

    /// Erases the live bar (nothing to do otherwise).
    public func clear() {
        if live { out.write(Data("\r\u{1B}[K".utf8)) }
    }

    /// Ends the live bar and prints a summary line.
    public func line(_ text: String) {
        if live { out.write(Data("\r\u{1B}[K".utf8)) }
        out.write(Data((text + "\n").utf8))
    }

    public static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e12 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
