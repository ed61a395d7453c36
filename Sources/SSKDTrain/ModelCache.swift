// Trained weights kept by what decided them, so that a teacher is trained once and reused.
//
//   key       a canonical string (the protocol's: sorted JSON of the data fingerprint, the model,
//             its initial weights' fingerprint, every training setting, the seed and a format
//             version); the caller decides what goes in, the cache only compares it whole
//   file      <directory>/<first 16 hex digits of SHA-256(key)>.safetensors
//   metadata  format, the key itself, the weights' checksum, when it was written, and the
//             caller's own fields (e.g. the teacher's test accuracy)
//
// A lookup never trusts a file it cannot verify: missing, unreadable (truncated, not
// safetensors), written by something else, written for another key, or with weights whose
// checksum differs from the one recorded are all misses that say why, and the model is left
// untouched. Writes go through SafeTensors.write (a unique temporary file, renamed into place).
//
// Processes sharing the folder (the ranks of a sweep under mpirun, on one machine) that may
// train the same entry take its lock (`lock(key)`: flock on <file>.lock) around "look up, train
// if missing, store": the second waits, then finds the first one's weights instead of training
// them again. The lock is the kernel's, so a process that dies releases it.

import Foundation
import SSKDNN
import SSKDTensor

public final class ModelCache {
    public static let format = "sskd-model-cache-1"
    public let directory: String

    public init(directory: String) throws {
        self.directory = directory
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        catch { throw TrainError("model cache", "cannot create \(directory): \(error.localizedDescription)") }
    }

    /// Where the weights for `key` live (whether or not they exist yet).
    public func path(forKey key: String) -> String {
        (directory as NSString).appendingPathComponent(String(SHA256.hex(key).prefix(16)) + ".safetensors")
    }

    public enum Lookup {
        /// The model now holds the cached weights; `metadata` is what `store` recorded.
        case hit(path: String, metadata: [String: String])
        /// Nothing was loaded; `reason` says why in a sentence (for the run's log).
        case miss(path: String, reason: String)
    }

    /// Loads the weights stored for `key` into `model`, or says why not. Never throws: a cache
    /// problem is a reason to retrain, not to fail the run.
    public func load(into model: Module, key: String) -> Lookup {
        let path = path(forKey: key)
        guard FileManager.default.fileExists(atPath: path) else {
            return .miss(path: path, reason: "no cached weights for these settings" + nearestDifference(to: key))
        }
        let sd: StateDict
        do { sd = try SafeTensors.read(path) }
        catch { return .miss(path: path, reason: "the cached file is unreadable (\(error)); retraining") }
        guard sd.metadata["format"] == Self.format else {
            return .miss(path: path, reason: "the cached file is not a \(Self.format) file (format \(sd.metadata["format"].map { "'\($0)'" } ?? "missing")); retraining")
        }
        guard let stored = sd.metadata["key"], stored == key else {
            let diff = sd.metadata["key"].map { Self.describeDifference(from: $0, to: key) } ?? "it records no key"
            return .miss(path: path, reason: "the cached file was written for other settings (\(diff)); retraining")
        }
        let checksum = Fingerprint.stateDict(sd)
        guard sd.metadata["checksum"] == checksum else {
            return .miss(path: path, reason: "the cached file is corrupt: its weights' checksum \(checksum.prefix(16)) differs from the recorded \(sd.metadata["checksum"]?.prefix(16) ?? "none"); retraining")
        }
        do { try model.loadStateDict(sd, strict: true) }
        catch { return .miss(path: path, reason: "the cached weights do not fit the model (\(error)); retraining") }
        return .hit(path: path, metadata: sd.metadata)
    }

    /// Takes the lock of `key`'s entry, waiting while another process holds it.
    public func lock(key: String) throws -> CacheLock { try CacheLock(path: path(forKey: key) + ".lock") }

    /// Stores `model`'s weights under `key` with `metadata` (the reserved fields format, key,
    /// checksum and written are set here). Returns the file's path.
    @discardableResult
    public func store(_ model: Module, key: String, metadata: [String: String] = [:]) throws -> String {
        let path = path(forKey: key)
        var sd = try withNoGrad { try model.stateDict().cloned() }
        var meta = metadata
        meta["format"] = Self.format
        meta["key"] = key
        meta["checksum"] = Fingerprint.stateDict(sd)
        meta["written"] = ISO8601DateFormatter().string(from: Date())
        sd.metadata = meta
        // SafeTensors.write goes through a temporary file unique per process and call, renamed
        // into place: concurrent stores of one key leave one whole file, readers never see half.
        try SafeTensors.write(sd, to: path)
        return path
    }

    /// The fields of two keys that differ, when both are JSON objects ("epochs: 3 -> 5"); else a
    /// note that they differ.
    static func describeDifference(from old: String, to new: String) -> String {
        func object(_ s: String) -> [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any]
        }
        guard let a = object(old), let b = object(new) else { return "the keys differ" }
        var parts: [String] = []
        for k in Set(a.keys).union(b.keys).sorted() {
            let x = a[k].map(Self.short), y = b[k].map(Self.short)
            if x != y { parts.append("\(k): \(x ?? "absent") -> \(y ?? "absent")") }
        }
        return parts.isEmpty ? "the keys differ in formatting only" : parts.joined(separator: ", ")
    }

    private static func short(_ v: Any) -> String {
        let s: String
        if let d = try? JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed, .sortedKeys]) {
            s = String(decoding: d, as: UTF8.self)
        } else { s = "\(v)" }
        return s.count > 40 ? String(s.prefix(37)) + "..." : s
    }

    /// For a miss: the cached entry whose key is closest to `key` (fewest differing fields), as
    /// " (closest cached: FILE differs in a: 1 -> 2)", or "" when the folder holds none.
    private func nearestDifference(to key: String) -> String {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return "" }
        var best: (file: String, diff: String, n: Int)? = nil
        for name in names.sorted() where name.hasSuffix(".safetensors") {
            let file = (directory as NSString).appendingPathComponent(name)
            guard let other = Self.storedKey(file) else { continue }
            let diff = Self.describeDifference(from: other, to: key)
            let n = diff.components(separatedBy: " -> ").count - 1
            if best == nil || n < best!.n { best = (file, diff, n) }
        }
        return best.map { " (the closest cached entry, \($0.file), differs in \($0.diff))" } ?? ""
    }

    /// The key recorded in a cache file's header, reading only the header.
    static func storedKey(_ path: String) -> String? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        guard let lenBytes = try? h.read(upToCount: 8), lenBytes.count == 8 else { return nil }
        let n = lenBytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
        guard n > 0, n <= UInt64(SafeTensors.maxHeaderBytes), let header = try? h.read(upToCount: Int(n)), header.count == Int(n),
              let json = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any],
              let meta = json["__metadata__"] as? [String: Any], meta["format"] as? String == format else { return nil }
        return meta["key"] as? String
    }
}

/// An exclusive lock on a cache entry (flock on a lock file beside it), held until `unlock()` or
/// until the lock is released; the kernel releases it when the process ends.
public final class CacheLock {
    public let path: String
    private var fd: Int32
    /// Whether another process held the lock when this one asked (and it waited).
    public let waited: Bool

    /// Lock files held in this process, by the thread that took each. A thread asking again for
    /// a lock it holds would wait for itself forever (a Lua recipe calling `cache:lock(k)` twice):
    /// that is refused. Another thread waits, as another process does.
    nonisolated(unsafe) private static var held: [String: pthread_t] = [:]
    private static let heldMutex = NSLock()

    public init(path: String) throws {
        let key = URL(fileURLWithPath: path).standardizedFileURL.path
        self.path = path
        try Self.heldMutex.withLock {
            if let holder = Self.held[key], pthread_equal(holder, pthread_self()) != 0 {
                throw TrainError("model cache", "this thread already holds the lock \(path); unlock it first (waiting for it would never end)")
            }
        }
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        func fail(_ message: String) -> TrainError { TrainError("model cache", message) }
        guard fd >= 0 else { throw fail("cannot open the lock file \(path): \(String(cString: strerror(errno)))") }
        var waited = false
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            waited = true
            while flock(fd, LOCK_EX) != 0 {
                let err = errno
                // Ctrl-C (while the trainer's handler is installed) ends the wait.
                guard err == EINTR, !Interrupt.requested else {
                    close(fd)
                    throw fail(err == EINTR ? "interrupted while waiting for \(path)" : "cannot lock \(path): \(String(cString: strerror(err)))")
                }
            }
        }
        self.fd = fd
        self.waited = waited
        Self.heldMutex.withLock { Self.held[key] = pthread_self() }
    }

    public var isLocked: Bool { fd >= 0 }

    public func unlock() {
        guard fd >= 0 else { return }
        // Forgotten before the kernel lock is released, so a waiting thread's entry is never erased.
        let key = URL(fileURLWithPath: path).standardizedFileURL.path
        Self.heldMutex.withLock { _ = Self.held.removeValue(forKey: key) }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { unlock() }
}
