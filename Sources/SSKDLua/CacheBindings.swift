// `sskd.model_cache(dir)`: trained weights kept by key (SSKDTrain's ModelCache), so that a
// recipe trains a teacher once and reuses it; `sskd.sha256(s)`. The key is a string, usually
// `sskd.canonical{...}` of everything that decides the weights (see scripts/protocol.lua).
import CLua
import CLuaShim
import Foundation
import SSKDNN
import SSKDTrain

enum CacheBindings {
    static func register() {
        let C = LuaTypes.register(ModelCache.self, name: "ModelCache",
                                  doc: "Trained weights kept by key in a folder; a file that cannot be verified is never used.")
        C.tostring { "ModelCache(\($0.directory))" }
        C.field("dir", "the cache's folder") { c, m in c.pushString(m.directory); return 1 }
        C.method("path", "cache:path(key) -> string", "the file that holds (or would hold) the weights for `key`") { c, m in
            c.pushString(m.path(forKey: try c.string(2))); return 1
        }
        C.method("load", "cache:load(model, key) -> true, {path=, metadata={...}} | false, reason, path",
                 "loads the weights stored for `key` into `model`; on a miss (no file, unreadable, other settings, bad checksum) the model is untouched and `reason` says why") { c, m in
            let model = try c.object(2, Module.self, expected: "Module")
            let key = try c.string(3)
            switch m.load(into: model, key: key) {
            case let .hit(path, metadata):
                c.push(true)
                lua_createtable(c.L, 0, 2)
                c.pushString(path); c.setRawField(-2, "path")
                lua_createtable(c.L, 0, Int32(metadata.count))
                for (k, v) in metadata { c.pushString(v); c.setRawField(-2, k) }
                c.setRawField(-2, "metadata")
                return 2
            case let .miss(path, reason):
                c.push(false); c.pushString(reason); c.pushString(path)
                return 3
            }
        }
        C.method("store", "cache:store(model, key [, metadata]) -> path",
                 "writes `model`'s weights for `key` (atomically: a temporary file renamed into place); `metadata` is a table of strings or numbers kept in the file") { c, m in
            let model = try c.object(2, Module.self, expected: "Module")
            let key = try c.string(3)
            let meta = try c.stringMetadata(4)
            for reserved in ["format", "key", "checksum", "written"] where meta[reserved] != nil {
                throw c.argError(4, message: "metadata '\(reserved)' is reserved (the cache sets it)")
            }
            c.pushString(try m.store(model, key: key, metadata: meta))
            return 1
        }
        C.method("lock", "cache:lock(key) -> CacheLock",
                 "takes the entry's lock (a lock file beside it), waiting while another process (a sweep's rank) holds it: wrap look-up, training and store in it so that one process trains and the others reuse") { c, m in
            try c.push(object: try m.lock(key: try c.string(2)))
            return 1
        }
        let L = LuaTypes.register(CacheLock.self, name: "CacheLock", doc: "A held lock on a model-cache entry; released by unlock(), when collected, or when the process ends.")
        L.tostring { "CacheLock(\($0.path), \($0.isLocked ? "held" : "released"))" }
        L.field("waited", "whether another process held the lock first (this one waited for it)") { c, l in c.push(l.waited); return 1 }
        L.method("unlock", "lock:unlock()", "releases the lock (again: nothing)") { c, l in l.unlock(); return 0 }
        let sskd = LuaLibraries.named("sskd")
        sskd.function("model_cache", "sskd.model_cache(dir) -> ModelCache", "a folder of trained weights kept by key (created if missing)") { c in
            try c.push(object: try ModelCache(directory: try c.string(1)))
            return 1
        }
        sskd.function("sha256", "sskd.sha256(s) -> string", "SHA-256 of a string, as 64 hex digits") { c in
            c.pushString(SHA256.hex(try c.string(1))); return 1
        }
    }
}
