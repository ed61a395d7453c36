// `dist`: the ranks of an `mpirun` job from Lua (torch.distributed's vocabulary). Every function
// works in a process started without mpirun (one rank: collectives keep or copy the values).
// Plain Lua values cross ranks through `LuaValueCodec` (nil, booleans, integers, floats, strings,
// tensors and tables of them), encoded and decoded with raw access only, so no metamethod runs
// inside a Swift frame.
import CLua
import CLuaShim
import Foundation
import SSKDDist
import SSKDTensor

enum DistBindings {
    static func register() {
        let d = LuaLibraries.named("dist", doc: "The ranks of an mpirun job: rank, size, collectives on tensors and plain Lua values (one rank without mpirun).")
        d.function("rank", "dist.rank() -> integer", "this process's zero-based rank (0 without mpirun)") { c in
            c.push(try Communicator.world().rank); return 1
        }
        d.function("size", "dist.size() -> integer", "the number of ranks (1 without mpirun)") { c in
            c.push(try Communicator.world().size); return 1
        }
        d.function("is_main", "dist.is_main() -> boolean", "whether this is rank 0 (the rank that writes files and prints tables)") { c in
            c.push(try Communicator.world().isMain); return 1
        }
        d.function("barrier", "dist.barrier()", "waits until every rank has reached this call") { c in
            try Communicator.world().barrier(); return 0
        }
        d.function("all_reduce", "dist.all_reduce(t [, op='sum']) -> t",
                   "combines a tensor over the ranks in place: op 'sum', 'mean', 'max' or 'min' (every rank passes the same shape)") { c in
            let t = try c.tensor(1)
            let op = try ReduceOp(parsing: try c.optString(2) ?? "sum", op: "all_reduce")
            try Communicator.world().allReduce(t, op: op)
            c.pushValue(1); return 1
        }
        d.function("broadcast", "dist.broadcast(t, root) -> t", "overwrites t with rank `root`'s values on every rank, in place") { c in
            let t = try c.tensor(1)
            try Communicator.world().broadcast(t, root: try c.int(2))
            c.pushValue(1); return 1
        }
        d.function("all_gather", "dist.all_gather(t) -> {t_rank0, t_rank1, ...}", "every rank's tensor (same shape on all), in rank order") { c in
            let parts = try Communicator.world().allGather(try c.tensor(1))
            lua_createtable(c.L, Int32(parts.count), 0)
            for (i, p) in parts.enumerated() { _ = c.push(p); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
            return 1
        }
        d.function("gather_object", "dist.gather_object(v [, root=0]) -> {v_rank0, v_rank1, ...} on root, nil elsewhere",
                   "collects a plain Lua value (nil, boolean, number, string, Tensor, tables of them) from every rank on `root`") { c in
            let root = try c.int(2, default: 0)
            let bytes = try LuaValueCodec.encode(c, 1)
            guard let all = try Communicator.world().gather(bytes: bytes, root: root) else { c.pushNil(); return 1 }
            try c.reserve(8)
            lua_createtable(c.L, Int32(all.count), 0)
            for (i, b) in all.enumerated() {
                try LuaValueCodec.decode(c, b, from: "rank \(i)")
                lua_rawseti(c.L, -2, lua_Integer(i + 1))
            }
            return 1
        }
        d.function("broadcast_object", "dist.broadcast_object(v, root) -> value",
                   "rank `root`'s plain Lua value on every rank (the others' `v` is ignored)") { c in
            let comm = try Communicator.world()
            let root = try c.int(2)
            let bytes = comm.rank == root ? try LuaValueCodec.encode(c, 1) : []
            try LuaValueCodec.decode(c, try comm.broadcast(bytes: bytes, root: root), from: "rank \(root)")
            return 1
        }
    }
}

/// A binary encoding of plain Lua values for sending between ranks.
///
///   value   tag byte, then: nil/false/true nothing; integer Int64 LE; float Double bits LE;
///           string length Int64 + bytes; tensor dims Int64 + sizes Int64 each + Float32 LE
///           values; table pair count Int64 + (key, value) pairs
enum LuaValueCodec {
    static let maxDepth = 32

    enum Tag: UInt8 { case `nil` = 0, `false`, `true`, integer, float, string, tensor, table }

    /// The value at `index`; an error names where in it an unsendable value sits.
    static func encode(_ c: LuaCall, _ index: Int32) throws -> [UInt8] {
        var out: [UInt8] = []
        try encode(c, lua_absindex(c.L, index), into: &out, path: "value", depth: 0)
        return out
    }

    private static func put(_ v: UInt64, _ out: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }

    private static func encode(_ c: LuaCall, _ i: Int32, into out: inout [UInt8], path: String, depth: Int) throws {
        let L = c.L
        switch lua_type(L, i) {
        case LUA_TNIL, LUA_TNONE: out.append(Tag.nil.rawValue)
        case LUA_TBOOLEAN: out.append(lua_toboolean(L, i) != 0 ? Tag.true.rawValue : Tag.false.rawValue)
        case LUA_TNUMBER:
            if lua_isinteger(L, i) != 0 {
                out.append(Tag.integer.rawValue); put(UInt64(bitPattern: Int64(lua_tointegerx(L, i, nil))), &out)
            } else {
                out.append(Tag.float.rawValue); put(lua_tonumberx(L, i, nil).bitPattern, &out)
            }
        case LUA_TSTRING:
            var len = 0
            let p = lua_tolstring(L, i, &len)
            out.append(Tag.string.rawValue); put(UInt64(len), &out)
            if let p, len > 0 { out.append(contentsOf: UnsafeRawBufferPointer(start: p, count: len)) }
        case LUA_TTABLE:
            guard depth < maxDepth else { throw LuaError("\(c.name): \(path) nests tables deeper than \(maxDepth) levels (a cycle?)") }
            try c.reserve(4)
            out.append(Tag.table.rawValue)
            let countAt = out.count
            put(0, &out)
            var n: UInt64 = 0
            lua_pushnil(L)
            // (A thrown error leaves the stack as it is: the trampoline raises after we return.)
            while lua_next(L, i) != 0 {
                let top = lua_gettop(L)
                let keyName = c.stringValue(top - 1) ?? (lua_isinteger(L, top - 1) != 0 ? "[\(lua_tointegerx(L, top - 1, nil))]"
                    : lua_type(L, top - 1) == LUA_TNUMBER ? "[\(lua_tonumberx(L, top - 1, nil))]" : "[\(c.typeName(top - 1))]")
                let sub = path + (c.stringValue(top - 1) != nil ? "." + keyName : keyName)
                switch lua_type(L, top - 1) {
                case LUA_TSTRING, LUA_TNUMBER, LUA_TBOOLEAN: try encode(c, top - 1, into: &out, path: path, depth: depth + 1)
                default: throw LuaError("\(c.name): \(path) has a \(c.typeName(top - 1)) key; only string, number and boolean keys can be sent")
                }
                try encode(c, top, into: &out, path: sub, depth: depth + 1)
                c.pop()
                n += 1
            }
            withUnsafeBytes(of: n.littleEndian) { for (k, b) in $0.enumerated() { out[countAt + k] = b } }
        default:
            if let t = c.toObject(i, Tensor.self) {
                out.append(Tag.tensor.rawValue); put(UInt64(t.dim), &out)
                for d in t.shape { put(UInt64(d), &out) }
                out.append(contentsOf: UnsafeRawBufferPointer(start: t.data, count: t.count * MemoryLayout<Float>.stride))
                return
            }
            throw LuaError("\(c.name): \(path) is a \(c.typeName(i)); only nil, booleans, numbers, strings, tensors and tables of them can be sent between ranks")
        }
    }

    /// Pushes the value encoded in `bytes` (from another rank, named by `from` in errors).
    static func decode(_ c: LuaCall, _ bytes: [UInt8], from: String) throws {
        var pos = 0
        try bytes.withUnsafeBytes { b in
            try decode(c, b, &pos, from: from, depth: 0)
        }
        guard pos == bytes.count else { throw LuaError("\(c.name): \(bytes.count - pos) stray bytes after the value from \(from)") }
    }

    private static func decode(_ c: LuaCall, _ b: UnsafeRawBufferPointer, _ pos: inout Int, from: String, depth: Int) throws {
        func bad(_ what: String) -> LuaError { LuaError("\(c.name): the value from \(from) is malformed (\(what) at byte \(pos))") }
        func u64() throws -> UInt64 {
            guard b.count - pos >= 8 else { throw bad("truncated number") }
            defer { pos += 8 }
            return UInt64(littleEndian: b.loadUnaligned(fromByteOffset: pos, as: UInt64.self))
        }
        func length(_ unit: Int) throws -> Int {
            let n = try u64()
            guard n <= UInt64(b.count - pos) / UInt64(unit) else { throw bad("length \(n) beyond the data") }
            return Int(n)
        }
        guard depth <= maxDepth + 1 else { throw bad("nesting") }
        try c.reserve(4)
        guard pos < b.count, let tag = Tag(rawValue: b[pos]) else { throw bad("unknown tag") }
        pos += 1
        switch tag {
        case .nil: c.pushNil()
        case .false: c.push(false)
        case .true: c.push(true)
        case .integer: lua_pushinteger(c.L, lua_Integer(Int64(bitPattern: try u64())))
        case .float: c.push(Double(bitPattern: try u64()))
        case .string:
            let n = try length(1)
            _ = lua_pushlstring(c.L, b.baseAddress.map { ($0 + pos).assumingMemoryBound(to: CChar.self) }, n)
            pos += n
        case .tensor:
            let dims = try length(8)
            var shape: [Int] = []
            for _ in 0..<dims { shape.append(Int(clamping: try u64())) }
            let t = try Tensor.empty(shape)
            guard t.count <= (b.count - pos) / MemoryLayout<Float>.stride else { throw bad("tensor values beyond the data") }
            if t.count > 0 { UnsafeMutableRawPointer(t.data).copyMemory(from: b.baseAddress! + pos, byteCount: t.count * MemoryLayout<Float>.stride) }
            pos += t.count * MemoryLayout<Float>.stride
            _ = c.push(t)
        case .table:
            let n = try length(2)
            lua_createtable(c.L, 0, Int32(clamping: n))
            for _ in 0..<n {
                try decode(c, b, &pos, from: from, depth: depth + 1)
                guard lua_type(c.L, -1) != LUA_TNIL, lua_type(c.L, -1) != LUA_TNUMBER || lua_isinteger(c.L, -1) != 0 || !lua_tonumberx(c.L, -1, nil).isNaN else {
                    throw bad("nil or NaN key")
                }
                try decode(c, b, &pos, from: from, depth: depth + 1)
                lua_rawset(c.L, -3)
            }
        }
    }
}
